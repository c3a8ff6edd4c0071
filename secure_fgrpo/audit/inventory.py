"""What the server received and what it can compute, from its transcript and metrics alone.

Lists every message kind per round and stage (senders, count, bytes), classifies each kind by
the protection its payload carries, states what the server can compute, reads the DP ε it
logged, and flags anything per-client that is not masked or encrypted: plaintext payload kinds,
per-client keys in ``server/metrics.jsonl``, and payload sizes that differ across senders (a
size that depends on private data is a side channel).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .view import ServerView

# kind -> (protection, what it carries). "plaintext" per-client kinds are always flagged.
KINDS: dict[str, tuple[str, str]] = {
    "vector": ("plaintext", "a client's [e·Δ, e] in clear (float64)"),
    "masked": ("masked", "fixed-point [e·Δ, e] plus pairwise and self masks (uniform words)"),
    "ciphertexts": ("encrypted", "BFV/CKKS ciphertexts of [e·Δ, e] under the federation key"),
    "plain-sum": ("aggregate", "the decrypted sum [Σe·Δ, Σe], returned by the round's decryptor"),
    "advertise": ("public", "two X25519 round public keys and an Ed25519 signature"),
    "shares": ("encrypted", "Shamir shares sealed to each holder (AEAD) and a seed commitment"),
    "ack": ("public", "a signature on the survivor set"),
    "unmask": ("protocol-reveal", "Shamir shares that remove the masks of the sum (revealed by design)"),
    # PubSwap (federation/exchange.py): fixed count x fixed size, dummies included
    "sealed-responses": ("encrypted", "PubSwap: prompts x responses blobs per other participant, each one response "
                         "record padded to pubswap.blob_bytes, AES-GCM under X25519+HKDF keys the server lacks"),
    "pubswap-relay": ("encrypted", "PubSwap relay (server -> client, stage 0): the sealed blobs addressed to one "
                      "client, labelled with their senders; the server cannot open them"),
}
# Kinds whose payload encodes a client's private vector: their size must not vary by sender.
PAYLOAD_KINDS = frozenset({"vector", "masked", "ciphertexts", "sealed-responses", "pubswap-relay"})
# server/metrics.jsonl keys known to be aggregates or public round facts.
AGGREGATE_KEYS = frozenset({"round", "contributors", "aborted", "reason", "update_norm", "sum_of_weights",
                            "global_accuracy", "stopped"})
AGGREGATE_TOKENS = frozenset({"sum", "mean", "total", "global", "avg", "average", "aggregate", "median",
                              "dp", "noise", "sigma", "epsilon", "delta", "contributors", "count"})
PER_CLIENT_TOKENS = frozenset({"gain", "gains", "reward", "rewards", "weight", "weights", "examples", "groups",
                               "baseline", "loss", "accuracy", "norm", "update", "delta"})


@dataclass(frozen=True)
class Flag:
    severity: str  # "high": per-client information in clear; "warn": needs a human look
    code: str
    where: str
    detail: str


@dataclass(frozen=True)
class StageRow:
    round: int
    stage: str
    kind: str
    protection: str
    senders: tuple[str, ...]
    count: int
    bytes_total: int
    size_min: int
    size_max: int


@dataclass
class Inventory:
    backend: str
    rows: list[StageRow]
    computable: list[str]
    metric_keys: dict[str, str]  # key -> "aggregate" | "dp" | "per-client" | "unreviewed"
    epsilon: dict[str, float]  # last logged value per ε key
    epsilon_by_round: dict[str, dict[int, float]]
    flags: list[Flag] = field(default_factory=list)

    @property
    def per_client_plaintext(self) -> bool:
        return any(f.severity == "high" for f in self.flags)


def build_inventory(view: ServerView) -> Inventory:
    rows = _stage_rows(view)
    flags = _kind_flags(rows) + _size_flags(rows)
    metric_keys, metric_flags = _metric_keys(view)
    flags += metric_flags
    eps, eps_rounds = _epsilon(view.metrics)
    return Inventory(view.inferred_backend(), rows, _computable(view, rows, metric_keys), metric_keys,
                     eps, eps_rounds, flags)


def _stage_rows(view: ServerView) -> list[StageRow]:
    groups: dict[tuple[int, str, str], list] = defaultdict(list)
    order: list[tuple[int, str, str]] = []
    for e in view.entries:
        key = (e.round, e.stage, e.kind)
        if key not in groups:
            order.append(key)
        groups[key].append(e)
    out = []
    for key in order:
        es = groups[key]
        sizes = [e.size for e in es]
        out.append(StageRow(key[0], key[1], key[2], KINDS.get(key[2], ("unclassified", ""))[0],
                            tuple(sorted({e.sender for e in es})), len(es), sum(sizes), min(sizes), max(sizes)))
    return out


def _kind_flags(rows: list[StageRow]) -> list[Flag]:
    flags = []
    for r in rows:
        where = f"round {r.round} stage {r.stage!r} kind {r.kind!r}"
        if r.protection == "plaintext":
            flags.append(Flag("high", "plaintext-per-client-payload", where,
                              f"{r.count} message(s) from {', '.join(r.senders)} carry a client's vector in clear"))
        elif r.protection == "unclassified":
            flags.append(Flag("warn", "unclassified-kind", where,
                              "a message kind the auditor does not know: review what it carries"))
    return flags


def _size_flags(rows: list[StageRow]) -> list[Flag]:
    flags = []
    for r in rows:
        if (r.kind in PAYLOAD_KINDS or r.protection == "unclassified") and r.size_min != r.size_max:
            flags.append(Flag("high", "size-varies-by-sender", f"round {r.round} stage {r.stage!r} kind {r.kind!r}",
                              f"payload sizes range {r.size_min}..{r.size_max} bytes across {len(r.senders)} senders: "
                              "a size that depends on private data is readable by the server"))
    return flags


def _tokens(key: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", key.lower()) if t}


def classify_metric(key: str, value: Any, participants: set[str]) -> tuple[str, str]:
    """(class, reason) for one key of a server metrics row."""
    toks = _tokens(key)
    names = {p.lower() for p in participants}
    if key in participants or toks & names:
        return "per-client", "the key names a participant"
    if isinstance(value, dict) and set(map(str, value)) & participants:
        return "per-client", "a table keyed by participant names"
    if isinstance(value, list) and len(participants) >= 2 and len(value) == len(participants):
        return "per-client", f"a list with one entry per participant ({len(value)})"
    if key in AGGREGATE_KEYS:
        return "aggregate", "a known aggregate or public round fact"
    if key.startswith("dp_") or "epsilon" in toks:
        return "dp", "public DP parameters / accounting"
    if toks & PER_CLIENT_TOKENS and not toks & AGGREGATE_TOKENS:
        return "per-client", "a per-client quantity (gain, reward, weight, ...) with no aggregate marker"
    if isinstance(value, dict | list):
        return "unreviewed", "a structured value: review what it aggregates"
    return "unreviewed", "not a known aggregate: review"


def _metric_keys(view: ServerView) -> tuple[dict[str, str], list[Flag]]:
    participants_by_round = {r: set(view.senders(r)) for r in view.rounds}
    everyone = set().union(*participants_by_round.values()) if participants_by_round else set()
    classes: dict[str, str] = {}
    flags: dict[str, Flag] = {}
    for i, row in enumerate(view.metrics):
        rnd = row.get("round")
        parts = participants_by_round.get(rnd, everyone) if isinstance(rnd, int) else everyone
        for key, value in row.items():
            cls, why = classify_metric(key, value, parts | everyone if isinstance(value, dict) else parts)
            if classes.get(key) == "per-client":
                continue
            classes[key] = cls
            if cls == "per-client":
                flags[key] = Flag("high", "per-client-metric", f"server/metrics.jsonl key {key!r} (row {i + 1})", why)
            elif cls == "unreviewed" and key not in flags:
                flags[key] = Flag("warn", "unreviewed-metric", f"server/metrics.jsonl key {key!r}", why)
    return classes, list(flags.values())


def _epsilon(metrics: list[dict]) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    by_round: dict[str, dict[int, float]] = defaultdict(dict)
    last: dict[str, float] = {}
    for row in metrics:
        for key, value in row.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if "epsilon" in key.lower() and numeric and (math.isfinite(float(value)) or value == math.inf):
                last[key] = float(value)
                if isinstance(row.get("round"), int):
                    by_round[key][row["round"]] = float(value)
    return last, dict(by_round)


def _computable(view: ServerView, rows: list[StageRow], metric_keys: dict[str, str]) -> list[str]:
    kinds = {r.kind for r in rows}
    rounds = view.rounds
    span = f"rounds {rounds[0]}..{rounds[-1]}" if rounds else "no rounds"
    out = []
    if "vector" in kinds:
        out.append(f"every client's [e_i·Δ_i, e_i] in clear ({span}): each update, each weight e_i "
                   "(hence each gain once n_i is guessed), and every sum")
    if "masked" in kinds:
        out.append(f"Σe_i·Δ_i and Σe_i over each round's contributors, after unmasking ({span}); "
                   "no individual vector")
    if "plain-sum" in kinds:
        out.append(f"Σe_i·Δ_i and Σe_i, decrypted and returned by the round's decryptor ({span})")
    elif "ciphertexts" in kinds:
        out.append("nothing from the payloads: ciphertexts only, no decrypted sum reached the server "
                   "(server-blind)")
    if "sealed-responses" in kinds:
        out.append("PubSwap: who sealed responses to whom, and when; never a response, its length or how many "
                   "were real (fixed blob count and size, dummies included)")
    agg = sorted(k for k, c in metric_keys.items() if c in ("aggregate", "dp") and k != "round")
    if agg:
        out.append("from its metrics: " + ", ".join(agg))
    if (view.server_dir / "checkpoints").is_dir():
        out.append("the global adapter after each round (server/checkpoints): differences give each "
                   "round's aggregate update")
    out.append("who took part in each round, and the size of every message (metadata)")
    return out
