"""Attacks on the server's view, scored against a truth the attacker never sees.

- update recovery: cosine between the attacker's estimate of a client's vector (from that
  client's own message) and the client's true Δ; chance is |cos| ~ 1/sqrt(d);
- gain inference: Spearman rank correlation between the weight the attacker reads from each
  message and the client's true gain; chance is a p-value that is not small;
- membership (per message): each message carries a planted canary direction; the attacker
  scores every candidate direction by its best cosine with the round's messages; AUC and
  Andrew et al.'s one-shot ε separate planted from never-planted candidates;
- membership (the sum, Andrew et al.): canary clients in every round, the released sums with
  optional Gaussian noise; ε_emp of the final model against the accountant's ε.

The estimates come from :mod:`estimates` (server view only); the truth from :mod:`simulate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from .epsilon import EpsilonEstimate, gdp_epsilon, one_shot_epsilon
from .estimates import MessageEstimate
from .simulate import SimTruth, unit

SUCCESS_COSINE = 0.5  # median cosine above which the update is recovered
CHANCE_SIGMAS = 6.0  # |cos| below CHANCE_SIGMAS/sqrt(d) for every message: chance
SUCCESS_P = 1e-4  # gain inference: a rank correlation this unlikely under chance
SUCCESS_AUC, CHANCE_AUC_BAND = 0.9, 0.3


@dataclass
class AttackResult:
    name: str
    verdict: str  # "succeeds" | "chance" | "partial"
    value: float  # the headline number (cosine, rho, AUC)
    chance: str  # what chance looks like, in words
    details: dict = field(default_factory=dict)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def update_recovery(estimates: list[MessageEstimate], truth: SimTruth) -> AttackResult:
    d = truth.dim - 1
    cos = np.array([_cos(m.vector[:d], truth.deltas[(m.round, m.sender)]) for m in estimates])
    bound = CHANCE_SIGMAS / math.sqrt(d)
    # What the revealed sum alone gives about one client (inherent to any secure sum).
    baseline = float(np.mean([_cos(truth.sums[m.round][:d], truth.deltas[(m.round, m.sender)]) for m in estimates]))
    med = float(np.median(cos))
    verdict = "succeeds" if med >= SUCCESS_COSINE else "chance" if float(np.abs(cos).max()) < bound else "partial"
    return AttackResult("update recovery", verdict, med, f"|cos| < {bound:.3f} (= {CHANCE_SIGMAS:g}/sqrt(d), d={d})",
                        {"cosines": cos.tolist(), "chance_bound": bound, "max_abs_cosine": float(np.abs(cos).max()),
                         "sum_baseline_cosine": baseline, "messages": len(cos)})


def gain_inference(estimates: list[MessageEstimate], truth: SimTruth) -> AttackResult:
    w = np.array([m.vector[-1] for m in estimates])
    g = np.array([truth.gains[(m.round, m.sender)] for m in estimates])
    e = np.array([truth.weights[(m.round, m.sender)] for m in estimates])
    rho, p = spearmanr(w, g) if np.ptp(w) > 0 else (0.0, 1.0)
    rho_w, _ = spearmanr(w, e) if np.ptp(w) > 0 else (0.0, 1.0)
    rho, p = (0.0, 1.0) if not np.isfinite(rho) else (float(rho), float(p))
    verdict = "succeeds" if rho > 0 and p < SUCCESS_P else "chance" if p >= SUCCESS_P else "partial"
    return AttackResult("gain inference", verdict, rho, f"Spearman p-value >= {SUCCESS_P:g} (n={len(w)})",
                        {"spearman_gain": rho, "p_value": p, "spearman_weight": float(rho_w),
                         "inferred": w.tolist(), "true_gain": g.tolist()})


def message_membership(estimates: list[MessageEstimate], truth: SimTruth, *, unobserved: int = 200,
                       delta: float = 1e-5, seed: int = 0) -> AttackResult:
    d = truth.dim - 1
    by_round: dict[int, np.ndarray] = {}
    for r in sorted({m.round for m in estimates}):
        rows = np.stack([m.vector[:d] for m in estimates if m.round == r])
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        by_round[r] = rows / np.where(norms == 0, 1.0, norms)
    observed = np.array([float((by_round[m.round] @ truth.canary[(m.round, m.sender)]).max()) for m in estimates])
    rng = np.random.default_rng(seed)  # candidate directions: public, not secret
    rounds = sorted(by_round)
    unobs = np.array([float((by_round[rounds[int(rng.integers(len(rounds)))]] @ unit(rng, d)).max())
                      for _ in range(unobserved)])
    est = one_shot_epsilon(observed, unobs, delta, seed=seed)
    # The same estimator with nothing planted at all (never-planted directions in the place of the
    # canaries, as many): what "chance" reads as at this number of messages.
    null = np.array([float((by_round[rounds[int(rng.integers(len(rounds)))]] @ unit(rng, d)).max())
                     for _ in range(len(observed))])
    est_null = one_shot_epsilon(null, unobs, delta, seed=seed)
    verdict = ("succeeds" if est.auc >= SUCCESS_AUC else
               "chance" if abs(est.auc - 0.5) <= CHANCE_AUC_BAND else "partial")
    return AttackResult("membership (per message)", verdict, est.auc, "AUC near 0.5, empirical ε near 0",
                        {"epsilon": _finite(est.epsilon), "epsilon_lower": _finite(est.epsilon_lower), "delta": delta,
                         "null_epsilon": _finite(est_null.epsilon),
                         "null_epsilon_lower": _finite(est_null.epsilon_lower),
                         "null_auc": est_null.auc, "messages": len(observed),
                         "observed": observed.tolist(), "unobserved": unobs.tolist()})


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else "inf"


@dataclass(frozen=True)
class SumCanaryAudit:
    estimate: EpsilonEstimate
    noise_multiplier: float
    rounds: int
    sample_rate: float
    accountant_epsilon: float  # exact Gaussian-DP ε of the simulated mechanism (inf without noise)
    observed: list[float]
    unobserved: list[float]


def sum_canary_audit(*, dim: int = 10000, clients: int = 10, canaries: int = 500, unobserved: int = 500,
                     rounds: int = 5, noise_multiplier: float = 0.0, sample_rate: float = 1.0,
                     delta: float = 1e-5, clip: float = 1.0, seed: int = 0) -> SumCanaryAudit:
    """Andrew et al.'s one-shot audit of what the *sums* reveal (every backend reveals them to
    whoever holds the model): ``canaries`` canary clients send ``clip·c_j`` (a fixed random
    direction) in each round they are sampled (probability ``sample_rate``); each round's sum
    carries Gaussian noise of std ``noise_multiplier·clip``; the statistic is the cosine of the
    final model delta with each canary, against never-inserted directions."""
    rng = np.random.default_rng(seed)  # a simulation of the mechanism; nothing secret
    c = rng.standard_normal((canaries, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    common = unit(rng, dim)
    final = np.zeros(dim)
    for _ in range(rounds):
        for _ in range(clients):
            u = 0.6 * common + unit(rng, dim)
            final += u * (clip * rng.uniform(0.4, 1.0) / np.linalg.norm(u))
        present = rng.random(canaries) < sample_rate
        final += clip * c[present].sum(axis=0)
        if noise_multiplier > 0:
            final += rng.normal(0.0, noise_multiplier * clip, dim)
    final /= np.linalg.norm(final)
    observed = c @ final
    v = rng.standard_normal((unobserved, dim))
    unobs = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ final
    est = one_shot_epsilon(observed, unobs, delta, seed=seed)
    if noise_multiplier > 0 and sample_rate >= 1.0:
        acc = gdp_epsilon(math.sqrt(rounds) / noise_multiplier, delta)
    elif noise_multiplier > 0:
        acc = _opacus_epsilon(noise_multiplier, sample_rate, rounds, delta)
    else:
        acc = math.inf
    return SumCanaryAudit(est, noise_multiplier, rounds, sample_rate, acc, observed.tolist(), unobs.tolist())


def _opacus_epsilon(z: float, q: float, steps: int, delta: float) -> float:
    """The project's accountant (Opacus RDP) for a subsampled Gaussian mechanism."""
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism="rdp")
    acc.history = [(z, q, steps)]
    return float(acc.get_epsilon(delta=delta))
