"""One round's release: the noisy secure sum of ``[e·Δ, e]`` and what is learned from it.

Why a file of its own: the federation (runner.py ``Federation._round``) and the DP canary audit
(audit/dp_canary.py) must run the SAME steps, or the audit measures a mechanism the run never
used. Both call :func:`release_round`, which is the only place that knows how client-level
noise enters a round:

plan.noise(spec) -> the spec widened by the noise's public box -> each party's input (the
caller's ``prepare``: float mechanisms privatize there) -> Skellam's integer noise handed to the
masked backend's parties (``noise=``) -> ``run_secure_sum`` -> the total (the server's, or the
one the clients of a server-blind backend agree on) -> abort when fewer than t contributed
under noise (the shares were calibrated for t) -> ``plan.finish_sum``.

What the caller keeps: how inputs are made (training, gain, clipping), what it does with the
total, its metrics and its model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..privacy.client_dp import ClientNoise, SkellamNoise
from ..secure_sum import DropSchedule, run_secure_sum
from ..secure_sum.base import (
    Backend,
    SumClient,
    SumOutcome,
    SumSpec,
    client_state_dir,
    server_state_dir,
)
from ..secure_sum.driver import Recorder

log = logging.getLogger(__name__)

Noise = ClientNoise | SkellamNoise
Prepare = Callable[[str, Noise | None], np.ndarray]  # (client, round noise) -> the vector it sends
Drops = Callable[[tuple[str, ...]], DropSchedule]  # the backend's stages -> who drops when
# A party (federation/party.py) builds its own client and input; None: it refused stage 0 (a dropout).
Join = Callable[[str], SumClient | None]


class NoisePlan(Protocol):
    """What :func:`release_round` needs of privacy/plan.py ``ClientLevelPlan`` / ``SkellamPlan``."""

    def noise(self, spec: SumSpec) -> Noise: ...

    def finish_sum(self, noise: Any, total: np.ndarray, contributors: int) -> np.ndarray: ...  # its own Noise


@dataclass
class Release:
    """One round's result. ``total`` is the finished sum (noise offsets removed, weight floored),
    or None when the round aborted or no party learned the sum."""

    outcome: SumOutcome  # aborted / reason also set when fewer than t contributed under noise
    total: np.ndarray | None
    spec: SumSpec  # the spec every party used (widened under noise)
    noise: Noise | None
    clients: dict[str, SumClient]


def release_round(plan: NoisePlan | None, backend: Backend, spec: SumSpec, prepare: Prepare | None, run_dir: Path,
                  recorder: Recorder, drops: Drops | None = None, join: Join | None = None) -> Release:
    """Run one secure sum over ``spec.participants`` with the plan's client-level noise
    (``plan`` None: no noise). ``prepare(name, noise)`` is called once per participant, in
    order, right before that participant's backend client is made; or, with ``join``, each
    party makes its own client from the round it accepted (its own noise and state folder)."""
    noise = plan.noise(spec) if plan is not None else None
    if noise is not None:  # the noised vectors need a wider public box (privacy/client_dp.py)
        spec = noise.widen(spec)
    # Skellam noise is added by the masked backend's clients, in their fixed-point words.
    in_backend = {"noise": noise} if isinstance(noise, SkellamNoise) else {}
    clients: dict[str, SumClient] = {}
    for name in spec.participants:
        if join is not None:
            joined = join(name)
            if joined is not None:
                clients[name] = joined
            continue
        if prepare is None:
            raise ValueError("release_round: needs prepare or join")
        vector = prepare(name, noise)
        sc = backend.client(name, spec, client_state_dir(run_dir, name), **in_backend)
        sc.set_input(vector)
        clients[name] = sc
    server = backend.server(spec, server_state_dir(run_dir), **in_backend)
    outcome = run_secure_sum(server, clients, recorder, drops(server.stages) if drops is not None else None)
    total = outcome.total
    if total is None and not outcome.aborted:
        total = agreed_client_result(clients, outcome.contributors)
    return settle(plan, backend, spec, noise, outcome, total, clients)


def settle(plan: NoisePlan | None, backend: Backend, spec: SumSpec, noise: Noise | None, outcome: SumOutcome,
           total: np.ndarray | None, clients: dict[str, SumClient] | None = None) -> Release:
    """What any transport does with a finished secure sum: abort when fewer than t contributed
    under noise (the shares were calibrated for t), check the aggregate's box, remove the noise
    offsets."""
    if noise is not None and not outcome.aborted and len(outcome.contributors) < spec.threshold:
        outcome.aborted = True  # noise shares were calibrated for at least t contributions
        outcome.reason = f"{len(outcome.contributors)} contributions, fewer than the threshold {spec.threshold}"
    if noise is None and not outcome.aborted and total is not None and not backend.weights_on_server:
        # [e·Δ, e] only (weights on the server carry a signed gain last); under noise the
        # sum may legitimately leave the box. A client that skipped its own checks shows here.
        try:
            spec.check_aggregate(total, len(outcome.contributors), outcome.stats.get("quantisation_bound", 0.0))
        except ValueError as err:
            log.warning("round %d: %s", spec.round, err)
            outcome.aborted, outcome.reason = True, str(err)
    if outcome.aborted:
        total = None
    elif total is not None and noise is not None and plan is not None:
        total = plan.finish_sum(noise, total, len(outcome.contributors))
    return Release(outcome=outcome, total=total, spec=spec, noise=noise, clients=clients or {})


def agreed_client_result(clients: dict[str, SumClient], contributors: tuple[str, ...]) -> np.ndarray | None:
    """Server-blind backends deliver the sum to clients only; they must all agree on it."""
    results = [r for r in (clients[n].result() for n in contributors) if r is not None]
    if not results:
        return None
    for other in results[1:]:
        if not np.allclose(other, results[0], rtol=1e-9, atol=1e-12):
            raise RuntimeError("clients decrypted different aggregates: refusing to apply the round")
    return results[0]
