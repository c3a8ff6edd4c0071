"""Protocol-level fuzz of the masked sum: one mutated message per round, any stage, either way.

Each trial runs a full round through the real driver (``run_secure_sum``) with one message
mutated: a client's message to the server, or the server's reply to a client; bit flips,
truncations, extensions, random bytes, a changed envelope field, or another client's message of
the same stage. The property (issue 13): the driver returns (no exception but the typed
rejections it handles), and a round that completes sums exactly over its contributors, within
the quantisation bound. Used by tests/test_masked_fuzz.py and benchmarks/masked_fuzz.py.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..base import Message, SumClient, SumSpec
from ..driver import run_secure_sum
from .backend import MaskedBackend
from .context import STAGES
from .simulate import ListRecorder, make_round

MUTATIONS = ("bitflip", "truncate", "extend", "random", "envelope", "swap")
DIRECTIONS = ("to_server", "to_client")


@dataclass
class Mutation:
    stage: str
    direction: str
    target: str  # the client whose message (or whose reply) is mutated
    kind: str
    seed: int


@dataclass
class FuzzReport:
    trials: int = 0
    aborted: int = 0
    completed_exact: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # escaped exceptions, wrong sums
    by_stage: dict[str, int] = field(default_factory=dict)


def mutate(msg: Message, how: Mutation, others: list[Message]) -> Message:
    rng = random.Random(how.seed)
    p = bytearray(msg.payload)
    if how.kind == "bitflip" and p:
        i = rng.randrange(len(p))
        p[i] ^= 1 << rng.randrange(8)
    elif how.kind == "truncate":
        p = p[: rng.randrange(len(p) + 1)] if p else p
    elif how.kind == "extend":
        p += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
    elif how.kind == "random":
        p = bytearray(rng.getrandbits(8) for _ in range(len(p)))
    elif how.kind == "envelope":
        name = rng.choice(["round", "stage", "sender", "recipient", "kind"])
        value: Any = {"round": msg.round + rng.choice([-1, 1]), "stage": rng.choice(STAGES),
                      "sender": rng.choice(["server", "client-000", "mallory"]),
                      "recipient": rng.choice(["server", "client-001", "mallory"]),
                      "kind": rng.choice(["masked", "shares", "keybook", "nonsense"])}[name]
        return dataclasses.replace(msg, **{name: value})
    elif how.kind == "swap" and others:
        return dataclasses.replace(msg, payload=rng.choice(others).payload)
    return dataclasses.replace(msg, payload=bytes(p))


class _Tampering(SumClient):
    """Wraps a real client; mutates its outbound message or the reply it receives, once."""

    def __init__(self, inner: SumClient, how: Mutation | None, seen: dict[str, list[Message]]) -> None:
        super().__init__(inner.name, inner.spec)
        self.inner, self.how, self.seen = inner, how, seen

    def set_input(self, vector: np.ndarray) -> None:
        self.inner.set_input(vector)

    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        how = self.how
        if how and how.stage == stage and how.direction == "to_client" and inbound is not None:
            inbound = mutate(inbound, how, [])
        out = self.inner.respond(stage, inbound)
        if out is not None:
            self.seen.setdefault(stage, []).append(out)
        if how and how.stage == stage and how.direction == "to_server" and out is not None:
            out = mutate(out, how, [m for m in self.seen.get(stage, []) if m.sender != self.name])
        return out


def trial(folder: Path, spec: SumSpec, backend: MaskedBackend, how: Mutation) -> tuple[str, str]:
    """("aborted" | "exact" | "escaped" | "wrong-sum", detail) for one mutated round."""
    sim = make_round(folder, spec, rng=np.random.default_rng(how.seed), backend=backend)
    seen: dict[str, list[Message]] = {}
    clients: dict[str, SumClient] = {n: _Tampering(c, how if n == how.target else None, seen)
                                     for n, c in sim.clients.items()}
    try:
        out = run_secure_sum(sim.server, clients, ListRecorder())
    except Exception as err:
        return "escaped", f"{type(err).__name__}: {err} | {traceback.format_exc(limit=3)[-600:]}"
    if out.aborted:
        return "aborted", out.reason
    if out.total is None:
        return "wrong-sum", "the round completed without a sum"
    exact = sum(sim.inputs[c] for c in out.contributors)
    gap = float(np.abs(out.total - exact).max())
    if gap > out.stats["quantisation_bound"]:
        return "wrong-sum", f"|error| {gap:.3g} > bound {out.stats['quantisation_bound']:.3g}"
    return "exact", ""


def run(folder: Path, spec: SumSpec, options: dict[str, Any], trials: int, seed: int = 0) -> FuzzReport:
    """``trials`` rounds, each with one mutation drawn from a seeded generator."""
    rng = random.Random(seed)
    report = FuzzReport()
    logging.getLogger("secure_fgrpo.secure_sum").setLevel(logging.ERROR)
    folder.mkdir(parents=True, exist_ok=True)
    backend = MaskedBackend(**options)
    backend.setup(folder, list(spec.participants))
    for i in range(trials):
        how = Mutation(stage=rng.choice(STAGES), direction=rng.choice(DIRECTIONS),
                       target=rng.choice(spec.participants), kind=rng.choice(MUTATIONS), seed=rng.getrandbits(32))
        if how.stage == "advertise" and how.direction == "to_client":
            how.direction = "to_server"  # nothing reaches a client before it advertises
        status, detail = trial(folder, spec, backend, how)
        report.trials += 1
        report.by_stage[how.stage] = report.by_stage.get(how.stage, 0) + 1
        if status == "aborted":
            report.aborted += 1
        elif status == "exact":
            report.completed_exact += 1
        else:
            report.failures.append({"trial": i, "status": status, "detail": detail, **dataclasses.asdict(how)})
    return report
