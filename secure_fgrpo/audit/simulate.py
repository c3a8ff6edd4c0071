"""The attack harness: a simulated federation through a real secure-sum backend.

Synthetic clients send ``[e·Δ, e]`` through ``run_secure_sum`` with the backend and options of
the run under audit; the server side is recorded exactly as in a federation (transcript plus
archived payloads under ``out/server``), so the attacks read the same kind of view. The truth
(each Δ, weight, gain, and the canary planted in each message) is returned to the caller and
never written where the attacker looks.

Deltas share a common direction (clients learn the same task) plus a private part, and each
message carries its own canary: a random unit direction of norm C/2 (a planted example whose
effect is as large as clipping allows), so membership has a per-message ground truth.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..secure_sum import make_backend, run_secure_sum
from ..secure_sum.base import SumSpec, client_state_dir, server_state_dir
from ..secure_sum.transcript import INBOX, TranscriptRecorder

log = logging.getLogger(__name__)


@dataclass
class SimTruth:
    """Known to the harness, never to the attacker."""

    dim: int  # length of [e·Δ, e]
    deltas: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # clipped Δ
    weights: dict[tuple[int, str], float] = field(default_factory=dict)
    gains: dict[tuple[int, str], float] = field(default_factory=dict)
    canary: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # unit direction per message
    sums: dict[int, np.ndarray] = field(default_factory=dict)  # exact Σ[e·Δ, e] per round
    specs: dict[int, SumSpec] = field(default_factory=dict)  # the public parameters of each round


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal(n)
    return v / np.linalg.norm(v)


def sim_options(options: dict) -> dict:
    """The run's backend options minus what names the run's own parties (a roster path)."""
    return {k: v for k, v in options.items() if k != "roster"}


# What the attack simulation affords: a run's own shape up to these sizes. Below MIN_MESSAGES
# messages the attacks' statistics (an AUC, a rank correlation) say little, so a short run is
# simulated over more rounds; the report then states both shapes.
MAX_SIM = {"clients": 16, "rounds": 12, "dim": 131_073}
MIN_MESSAGES = 24
DEFAULT_SHAPE = {"clients": 8, "rounds": 3, "dim": 1025}  # when the run does not show its own


@dataclass(frozen=True)
class SimShape:
    simulated: dict[str, int]  # clients, rounds, dim actually simulated
    run: dict[str, int | None]  # the run's own (None: the server's view does not show it)
    differs: list[str]  # the sizes where the two differ, each with why


def sim_shape(clients: int | None, rounds: int | None, dim: int | None) -> SimShape:
    """The run's own shape where affordable, and a line per size where it is not."""
    run = {"clients": clients, "rounds": rounds, "dim": dim}
    sim = {k: min(v, MAX_SIM[k]) if v else DEFAULT_SHAPE[k] for k, v in run.items()}
    sim["clients"] = max(2, sim["clients"])
    why: dict[str, str] = {}
    for k, v in run.items():
        if not v:
            why[k] = "not visible to the audit (payloads not archived); the default was simulated"
        elif v > MAX_SIM[k]:
            why[k] = f"capped at {MAX_SIM[k]:,} to keep the audit affordable"
    needed = math.ceil(MIN_MESSAGES / sim["clients"])
    if sim["rounds"] < needed:
        sim["rounds"] = min(needed, MAX_SIM["rounds"])
        why["rounds"] = f"raised so the attacks score at least {MIN_MESSAGES} messages"
    differs = [f"{k}: simulated {sim[k]:,}, the run {'?' if run[k] is None else f'{run[k]:,}'} ({w})"
               for k, w in why.items() if sim[k] != run[k]]
    return SimShape(sim, run, differs)


def simulate_federation(out: Path, backend: str, options: dict | None = None, *, clients: int = 8,
                        rounds: int = 3, dim: int = 1025, seed: int = 0, delta_clip: float = 1.0,
                        tau: float = 1.0, gain_clip: float = 2.0, alpha: float = 0.5) -> SimTruth:
    """Run ``rounds`` secure sums among ``clients`` synthetic clients; returns the truth."""
    out = Path(out)
    options = sim_options(dict(options or {}))
    if options.get("weights") == "server":
        options.setdefault("tau", tau)
        options.setdefault("gain_clip", gain_clip)
    names = [f"sim{i:02d}" for i in range(clients)]
    be = make_backend(backend, options)
    be.setup(out, names)
    (out / "config.json").write_text(json.dumps({"secure_sum": {"backend": backend, "options": options},
                                                 "simulation": True}))
    recorder = TranscriptRecorder(out / "server" / "transcript.jsonl", out / "server" / INBOX)
    rng = np.random.default_rng(seed)  # synthetic, non-secret data; masks use the backends' own CSPRNG
    n_max = 16
    e_max = n_max ** alpha * math.exp(gain_clip / tau)
    common = unit(rng, dim - 1)
    truth = SimTruth(dim)
    metrics = []
    for r in range(1, rounds + 1):
        spec = SumSpec(round=r, dim=dim, data_bound=e_max * delta_clip, weight_bound=e_max,
                       participants=tuple(names), threshold=max(1, math.ceil(0.66 * clients)), seed=seed)
        truth.specs[r] = spec
        sum_clients = {}
        for name in names:
            canary = unit(rng, dim - 1)
            delta = 0.6 * common + unit(rng, dim - 1) + 0.5 * canary
            delta *= delta_clip * rng.uniform(0.4, 1.0) / np.linalg.norm(delta)
            gain = float(rng.uniform(-gain_clip, gain_clip))
            n = int(rng.integers(8, n_max + 1))
            base = float(n) ** alpha
            e = base * math.exp(gain / tau)
            if be.weights_on_server:
                vector = np.concatenate([base * delta, [base, gain]])
            else:
                vector = np.concatenate([e * delta, [e]])
            sc = be.client(name, spec, client_state_dir(out, name))
            sc.set_input(vector)
            sum_clients[name] = sc
            truth.deltas[(r, name)], truth.weights[(r, name)], truth.gains[(r, name)] = delta, e, gain
            truth.canary[(r, name)] = canary
        outcome = run_secure_sum(be.server(spec, server_state_dir(out)), sum_clients, recorder)
        if outcome.aborted:
            raise RuntimeError(f"simulated round {r} aborted: {outcome.reason}")
        truth.sums[r] = np.sum([np.concatenate([truth.weights[(r, n)] * truth.deltas[(r, n)], [truth.weights[(r, n)]]])
                                for n in outcome.contributors], axis=0)
        metrics.append({"round": r, "contributors": len(outcome.contributors), "aborted": False})
    (out / "server" / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    log.info("simulated %d rounds of %d clients through %s (dim %d)", rounds, clients, backend, dim)
    return truth
