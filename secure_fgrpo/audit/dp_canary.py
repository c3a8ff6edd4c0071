"""One-shot canary audit of the run's REAL client-level mechanism (Andrew et al., ICLR 2024).

Nothing here re-implements the noise. The run's public config gives the privacy plan
(privacy/plan.py ``ClientLevelPlan``), the server's participant draw and ``SumSpec``
(federation/server.py ``Server``) and the secure-sum backend (``make_backend``); each round then
goes through federation/release.py ``release_round``, the function ``Federation._round`` itself
calls (plan.noise -> widen -> privatize per client, or Skellam's integer noise inside the
masked backend -> ``run_secure_sum`` -> abort under t -> plan.finish_sum).

Canary clients replace the run's clients: each sends its own random unit direction u at full
sensitivity, ``[e_max·C·u, e_max]``, in every round the server samples it. A never-sent
direction of the same kind is its null. Two statistics, Σ over rounds of the projection on u of

- ``sum``: the sum the round releases (what the masked/CKKS server, or the model holder, gets);
- ``message``: the server's best estimate of that client's own message (audit/estimates.py,
  from the recorded server view: the float vector in plaintext, noise-like words otherwise).

Each gives ε at δ via :func:`epsilon.one_shot_epsilon`; the attacker's best is the larger.
The statistic ignores the weight coordinate, so it sees C/sqrt(C²+1) of the sensitivity.

A Poisson round that draws fewer than 2 canaries releases nothing, as the federation's own
round does (federation/runner.py ``Federation._round``: "nothing to sum", the round still
counts for DP): its sum statistic is 0 and it has no messages.

Skellam's plan depends on the vector's length (the rounding bound Δ2 grows with it), so it is
built at the audit's ``dim``; :attr:`DPAudit.plan_row` gives the audited instance's σ, μ, γ and
ε for comparison with the run's logged ones (audit/dp_section.py does that comparison).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..federation.release import NoisePlan, release_round
from ..federation.server import Server
from ..privacy.plan import ClientLevelPlan
from ..rounds import MIN_TO_SUM
from ..secure_sum import make_backend
from ..secure_sum.base import Backend, Message, SumSpec
from ..secure_sum.transcript import INBOX, TranscriptRecorder
from .epsilon import EpsilonEstimate, gdp_epsilon, one_shot_epsilon
from .estimates import INPUT_KINDS, estimate_inputs
from .view import load_view

log = logging.getLogger(__name__)


class UnauditedMechanism(RuntimeError):
    """The run's secure sum does not carry ``[e·Δ, e]`` (server-side weights): the canary
    audit cannot run it (names the setting)."""


@dataclass(frozen=True)
class DPAudit:
    mechanism: str  # the config's mechanism, or "none" (the same audit without noise)
    backend: str
    rounds: int
    clients: int  # n: canary clients per trial (the run's client count)
    participants: int  # k of round 1 (Poisson: it varies; see sample_rate)
    threshold: int  # t of the round's SumSpec
    sample_rate: float
    noise_multiplier: float  # 0 without noise
    sigma: float  # std the SUM carries per coordinate (0 without noise)
    dim: int  # length of [e·Δ, e] audited
    trials: int
    sum: EpsilonEstimate
    message: EpsilonEstimate
    expected_sum_epsilon: float | None  # GDP ε of the sum statistic when every client is in every round
    accountant_epsilon: float | None  # the audited plan's own ε after ``rounds`` (None without noise)
    plan_row: dict[str, float] = field(default_factory=dict)  # the audited plan's metrics row (σ, μ, γ)
    statistics: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def best(self) -> EpsilonEstimate:
        """The attacker picks the statistic with the larger lower bound."""
        return max((self.sum, self.message), key=lambda e: (e.epsilon_lower, e.epsilon))

    @property
    def best_statistic(self) -> str:
        return "sum" if self.best is self.sum else "message"


class _InputsRecorder:
    """Records (and archives) only the input messages: the per-message estimates need no
    other stage, and archiving every key-exchange message would dominate the audit's time."""

    def __init__(self, inner: TranscriptRecorder) -> None:
        self.inner = inner

    def record(self, msg: Message) -> None:
        if msg.kind in INPUT_KINDS:
            self.inner.record(msg)


def audit_round(plan: NoisePlan | None, backend: Backend, spec: SumSpec, vectors: dict[str, np.ndarray],
                run_dir: Path, recorder: Any) -> np.ndarray:
    """One round of the client-level mechanism through the federation's own
    :func:`release_round` (each canary's input privatized as ``Client.prepare_input`` does);
    returns the released sum (offsets removed). ``plan`` None: the non-private path."""

    def prepare(name: str, noise: Any) -> np.ndarray:
        return noise.privatize(vectors[name]) if noise is not None else vectors[name]

    release = release_round(plan, backend, spec, prepare, run_dir, recorder)
    if release.outcome.aborted:
        raise RuntimeError(f"audit round {spec.round} aborted: {release.outcome.reason}")
    if release.total is None:
        raise RuntimeError(f"audit round {spec.round}: no party learned the sum")
    return np.asarray(release.total, dtype=np.float64)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal(n)
    return v / np.linalg.norm(v)


def audit_client_dp(cfg: Any, rounds: int, *, noise: bool = True, trials: int | None = None,
                    canaries: int = 240, dim: int = 2049, delta: float | None = None, seed: int = 0) -> DPAudit:
    """Run ``trials`` copies of ``rounds`` rounds of the run's mechanism with canary clients.

    ``cfg`` is the run's RunConfig (public). ``noise=False`` runs the same audit through the
    non-private path: the control that shows the audit has teeth. ``dim`` counts the weight;
    Gaussian noise is per coordinate, so it changes only the canaries' cross-talk
    (~1/sqrt(dim)); a Skellam plan is calibrated at this ``dim`` (see ``plan_row``)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if cfg.secure_sum.options.get("weights") == "server":
        raise UnauditedMechanism("secure_sum.options.weights = 'server' carries the gain, not [e·Δ, e]")
    plan = ClientLevelPlan.build(cfg, dim) if noise else None
    if noise and plan is None:
        raise ValueError("the config has no privacy.client_level section: nothing to audit with noise")
    names = [c.name for c in cfg.clients]
    n = len(names)
    trials = trials or max(2, math.ceil(canaries / n))
    delta = delta if delta is not None else (plan.cfg.delta if plan else 1e-5)
    e_max = plan.weight_max if plan else cfg.weight_bound
    clip = cfg.federation.delta_clip
    d = dim - 1
    rng = np.random.default_rng(seed)  # canary directions are public; the DP noise is not ours
    with tempfile.TemporaryDirectory(prefix="sfgrpo-dp-audit-") as tmp:
        out = Path(tmp)
        be = make_backend(cfg.secure_sum.backend, cfg.backend_options)
        be.setup(out, names)
        server = Server(out / "server", cfg, names)  # the federation's participant draw and SumSpec
        recorder = _InputsRecorder(TranscriptRecorder(out / "server" / "transcript.jsonl", out / "server" / INBOX))
        sums: dict[int, np.ndarray] = {}
        sampled: dict[int, list[str]] = {}
        dirs, nulls = rng.standard_normal((trials, n, d)), rng.standard_normal((trials, n, d))
        dirs /= np.linalg.norm(dirs, axis=2, keepdims=True)
        nulls /= np.linalg.norm(nulls, axis=2, keepdims=True)
        spec = None
        for t in range(trials):
            for r in range(1, rounds + 1):
                rid = t * rounds + r
                parts = server.participants(rid)
                sampled[rid] = parts
                if len(parts) < MIN_TO_SUM:  # the mechanism's release for this round: nothing
                    sums[rid] = np.zeros(dim)
                    continue
                spec = server.sum_spec(rid, parts, d)
                vectors = {p: np.concatenate([e_max * clip * dirs[t, names.index(p)], [e_max]]) for p in parts}
                sums[rid] = audit_round(plan, be, spec, vectors, out, recorder)
        summed = any(len(v) >= MIN_TO_SUM for v in sampled.values())  # else no transcript exists
        messages = {(m.round, m.sender): m.vector[:d] for m in estimate_inputs(load_view(out))} if summed else {}
    scale = e_max * clip
    stats: dict[str, dict[str, list[float]]] = {k: {"observed": [], "unobserved": []} for k in ("sum", "message")}
    for t in range(trials):
        rids = range(t * rounds + 1, (t + 1) * rounds + 1)
        for i, name in enumerate(names):
            for key, direction in (("observed", dirs[t, i]), ("unobserved", nulls[t, i])):
                stats["sum"][key].append(sum(float(sums[r][:d] @ direction) for r in rids) / scale)
                stats["message"][key].append(sum(float(messages[(r, name)] @ direction) for r in rids
                                                 if name in sampled[r] and (r, name) in messages) / scale)
    est = {k: one_shot_epsilon(np.array(v["observed"]), np.array(v["unobserved"]), delta, seed=seed)
           for k, v in stats.items()}
    k = len(sampled[1])
    threshold = spec.threshold if spec is not None else 0  # 0: no round had anything to sum
    sigma = plan.sigma if plan else 0.0
    expected = None
    if all(len(v) == n for v in sampled.values()):
        # every canary in every round: the sum statistic is Gaussian (Skellam: μ ≫ 1, nearly)
        # distributed Gaussian and Skellam: each contributor adds 1/t of the sum's variance
        share = 0.0 if plan is None else (sigma if plan.cfg.mechanism == "local" else sigma / math.sqrt(threshold))
        expected = math.inf if share == 0 else gdp_epsilon(math.sqrt(rounds) * scale / (share * math.sqrt(k)), delta)
    log.info("dp canary audit (%s, %s): %d trials x %d rounds, eps sum %.3g message %.3g",
             plan.cfg.mechanism if plan else "none", cfg.secure_sum.backend, trials, rounds,
             est["sum"].epsilon, est["message"].epsilon)
    return DPAudit(mechanism=plan.cfg.mechanism if plan else "none", backend=cfg.secure_sum.backend, rounds=rounds,
                   clients=n, participants=k, threshold=threshold,
                   sample_rate=cfg.federation.fraction if cfg.federation.sampling == "poisson" else k / n,
                   noise_multiplier=plan.noise_multiplier if plan else 0.0, sigma=sigma, dim=dim, trials=trials,
                   sum=est["sum"], message=est["message"], expected_sum_epsilon=expected,
                   accountant_epsilon=plan.budget.spent(rounds) if plan else None,
                   plan_row=plan.row(rounds) if plan else {}, statistics=stats)
