"""Empirical ε from canary statistics, in the style of Andrew et al. (ICLR 2024), "One-shot
Empirical Privacy Estimation for Federated Learning".

Canaries are random directions. Some are planted (their statistic, e.g. the cosine between
the released model delta and the canary, is "observed"), others never are ("unobserved").
Fitting one Gaussian to each set, the ε of the Gaussian pair at δ — the smallest ε such that
no test tells the two apart with a (ε, δ) advantage — estimates the privacy the release
actually gave. For a Gaussian mechanism whose canaries have full sensitivity it approaches the
true ε; a valid accountant's ε must sit above it (up to the sampling error, which
``epsilon_lower`` bounds with a bootstrap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtr
from scipy.stats import norm

EPS_MAX = 60.0  # beyond this the two sets are separated: reported as inf


@dataclass(frozen=True)
class EpsilonEstimate:
    epsilon: float  # point estimate (inf when the sets are separated beyond EPS_MAX)
    epsilon_lower: float  # bootstrap lower confidence bound
    delta: float
    auc: float  # P(observed > unobserved): 0.5 is chance
    mean_observed: float
    mean_unobserved: float
    std_observed: float
    std_unobserved: float
    n_observed: int
    n_unobserved: int


def _hockey_stick(m1: float, s1: float, m0: float, s0: float, eps: float, grid: np.ndarray) -> float:
    """∫ max(0, p - e^eps q) for p = N(m1, s1²), q = N(m0, s0²), in log space for stability."""
    lp, lq = norm.logpdf(grid, m1, s1), norm.logpdf(grid, m0, s0)
    integrand = np.exp(lp) * -np.expm1(np.minimum(0.0, eps + lq - lp))
    return float(np.trapezoid(integrand, grid))


def gaussian_pair_epsilon(m1: float, s1: float, m0: float, s0: float, delta: float,
                          points: int = 8001) -> float:
    """Smallest ε ≥ 0 with max(H_ε(P‖Q), H_ε(Q‖P)) ≤ δ for P = N(m1, s1²), Q = N(m0, s0²)."""
    if not (s1 > 0 and s0 > 0):
        return math.inf if m1 != m0 else 0.0
    # Each Gaussian gets its own fine grid, so very different widths are both resolved.
    grid = np.unique(np.concatenate([np.linspace(m - 40 * s, m + 40 * s, points) for m, s in ((m1, s1), (m0, s0))]))

    def profile(eps: float) -> float:
        return max(_hockey_stick(m1, s1, m0, s0, eps, grid), _hockey_stick(m0, s0, m1, s1, eps, grid))

    if profile(0.0) <= delta:
        return 0.0
    if profile(EPS_MAX) > delta:
        return math.inf
    lo, hi = 0.0, EPS_MAX
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if profile(mid) > delta:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-4:
            break
    return hi


def gdp_epsilon(mu: float, delta: float) -> float:
    """ε(δ) of μ-Gaussian DP (Dong, Roth, Su): exact for a composed Gaussian mechanism,
    δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2)."""
    if mu <= 0:
        return 0.0

    def d(eps: float) -> float:
        return float(ndtr(-eps / mu + mu / 2) - math.exp(min(700.0, eps + log_ndtr(-eps / mu - mu / 2))))

    if d(0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while d(hi) > delta:
        hi *= 2
        if hi > 1e4:
            return math.inf
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if d(mid) > delta else (lo, mid)
    return hi


def auc(observed: np.ndarray, unobserved: np.ndarray) -> float:
    """Mann-Whitney AUC: P(observed > unobserved) + ½ P(tie)."""
    o, u = np.asarray(observed, float), np.asarray(unobserved, float)
    greater = (o[:, None] > u[None, :]).mean()
    ties = (o[:, None] == u[None, :]).mean()
    return float(greater + 0.5 * ties)


def pair_epsilon(o: np.ndarray, u: np.ndarray, delta: float, equal_variance: bool) -> float:
    """ε of the Gaussian fits to ``o`` (observed) and ``u`` (unobserved)."""
    if equal_variance:
        pooled = math.sqrt(0.5 * (o.var(ddof=1) + u.var(ddof=1)))
        if pooled == 0:
            return math.inf if o.mean() != u.mean() else 0.0
        return gdp_epsilon(abs(o.mean() - u.mean()) / pooled, delta)
    return gaussian_pair_epsilon(o.mean(), o.std(ddof=1), u.mean(), u.std(ddof=1), delta, 2001)


def one_shot_epsilon(observed: np.ndarray, unobserved: np.ndarray, delta: float, *,
                     equal_variance: bool = True, bootstrap: int = 200, confidence: float = 0.95,
                     seed: int = 0) -> EpsilonEstimate:
    """Andrew et al.'s estimator: Gaussian fits to both sets, ε of the pair at ``delta``.

    ``equal_variance`` (default) fits one pooled variance, i.e. the pair is a Gaussian
    mechanism with μ = |mean difference| / std: exact for the Gaussian mechanism, and far less
    sensitive to the sampling error of two separate variances, which at small δ inflates ε
    (the privacy loss of unequal-variance Gaussians grows without bound in the tails)."""
    o, u = np.asarray(observed, float), np.asarray(unobserved, float)
    if o.size < 2 or u.size < 2:
        raise ValueError("one_shot_epsilon needs at least two observed and two unobserved statistics")
    point = pair_epsilon(o, u, delta, equal_variance)
    rng = np.random.default_rng(seed)  # resampling only: nothing secret
    boots = [pair_epsilon(rng.choice(o, o.size), rng.choice(u, u.size), delta, equal_variance)
             for _ in range(bootstrap)]
    lower = float(np.quantile(np.array(boots), 1 - confidence)) if boots else point
    return EpsilonEstimate(point, min(lower, point), delta, auc(o, u), float(o.mean()), float(u.mean()),
                           float(o.std(ddof=1)), float(u.std(ddof=1)), int(o.size), int(u.size))
