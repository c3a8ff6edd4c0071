"""The Skellam mechanism's math: conditional randomized rounding, its RDP bound, accounting,
calibration of the noise and of the fixed-point scale.

Convention, everywhere in this project: ``Sk(μ) = Poisson(μ) − Poisson(μ)``, variance ``2μ``,
in quanta (units of ``1/γ``, γ the fixed-point scale). Shares add: t clients each adding
``Sk(μ/t)`` put exactly ``Sk(μ)`` in their sum, so a secure sum of at least t contributions
carries at least ``Sk(μ)`` on every coordinate.

- Rounding (Kairouz, Liu, Steinke 2021, "The distributed discrete Gaussian mechanism for
  federated learning with secure aggregation", Theorem 1; also Agarwal, Kairouz, Liu 2021):
  a vector of L2 norm ≤ c rounded coordinate-wise at random to a neighbouring integer has
  ``‖x̃‖² ≤ c² + d/4 + sqrt(2·ln(1/β))·(c + sqrt(d)/2)`` except with probability ≤ β, and
  always ``‖x̃‖ ≤ c + sqrt(d)``. Conditional rounding re-draws until the first bound holds, so
  ``Δ2`` below is a hard L2 sensitivity in quanta, and ``Δ1 = min(Δ2², sqrt(d)·Δ2)`` (integers:
  ``|x| ≤ x²``) a hard L1 sensitivity.
- Privacy (Agarwal, Kairouz, Liu 2021, "The Skellam mechanism for differentially private
  federated learning", NeurIPS; the multidimensional bound for integer shifts, written for
  variance 2μ per coordinate): for integer α > 1,
  ``ε(α) ≤ α·Δ2²/(4μ) + min(((2α − 1)·Δ2² + 6·Δ1)/(16μ²), 3·Δ1/(4μ))``.
  The first term is the Gaussian's α·Δ²/(2σ²) at σ² = 2μ. Rounds compose by adding RDP; the
  conversion to (ε, δ) is Opacus' (Balle et al. 2020).
- Client sampling: the bound has no amplification by subsampling here, so every round is
  accounted as a full release, whoever was sampled (conservative).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .noise import POISSON_MAX, SecureRandom

log = logging.getLogger(__name__)

BETA = math.exp(-0.5)  # rounding failure bound per draw (the papers' experiments use this)
ORDERS = (*range(2, 129), 160, 192, 256, 384, 512, 768, 1024)  # integer α only
TAIL_LOG2 = 100  # a client's noise exceeds its word headroom with probability < 2^-100 per coordinate
MAX_TRIES = 1000  # re-draws of the rounding; each fails with probability ≤ β


def rounded_l2_bound(c: float, dim: int, beta: float = BETA) -> float:
    """Δ2: the L2 norm a vector of norm ≤ c keeps after conditional rounding (quanta)."""
    if dim < 1 or c < 0 or not 0 < beta < 1:
        raise ValueError(f"rounded_l2_bound: need dim >= 1, c >= 0, 0 < beta < 1 (got {dim}, {c}, {beta})")
    squared = c * c + dim / 4.0 + math.sqrt(2.0 * math.log(1.0 / beta)) * (c + math.sqrt(dim) / 2.0)
    return min(c + math.sqrt(dim), math.sqrt(squared))


def rounded_l1_bound(l2: float, dim: int) -> float:
    """Δ1 of an integer vector with L2 norm ≤ l2: min(l2², sqrt(d)·l2)."""
    return min(l2 * l2, math.sqrt(dim) * l2)


def conditional_round(x: np.ndarray, l2_bound: float, source: SecureRandom) -> np.ndarray:
    """Round each coordinate up with probability equal to its fractional part (unbiased), and
    re-draw the whole vector until its L2 norm is within ``l2_bound`` (int64)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError("conditional_round: x must be a finite 1-D vector")
    low = np.floor(x)
    frac = x - low
    limit = l2_bound * l2_bound * (1.0 - 1e-9)  # margin for float summation (pairwise: ~log2(d)·2^-53)
    for _ in range(MAX_TRIES):
        z = low + (source.uniform(x.size) < frac)
        if float(np.dot(z, z)) <= limit:
            return z.astype(np.int64)
    raise ValueError(f"conditional_round: no rounding within L2 norm {l2_bound:g} after {MAX_TRIES} "
                     "draws; the input is outside the sensitivity the bound was computed for")


def rdp(mu: float, l2: float, l1: float, orders: tuple[int, ...] = ORDERS) -> np.ndarray:
    """ε(α) of one release of Sk(μ) noise on a sum with integer sensitivities Δ2, Δ1."""
    if not mu > 0:
        return np.full(len(orders), np.inf)
    a = np.asarray(orders, dtype=np.float64)
    l2sq = l2 * l2
    tight = ((2.0 * a - 1.0) * l2sq + 6.0 * l1) / (16.0 * mu * mu)
    return a * l2sq / (4.0 * mu) + np.minimum(tight, 3.0 * l1 / (4.0 * mu))


def epsilon(mu: float, l2: float, l1: float, releases: int, delta: float) -> float:
    """(ε, δ) after ``releases`` compositions (RDP adds), converted as Opacus does."""
    if releases < 1:
        return 0.0
    from opacus.accountants.analysis.rdp import get_privacy_spent

    from .accountant import _quiet

    with _quiet():
        eps, _ = get_privacy_spent(orders=list(ORDERS), rdp=releases * rdp(mu, l2, l1), delta=delta)
    return float(eps)


def mu_for_epsilon(target: float, delta: float, l2: float, l1: float, releases: int) -> float:
    """The smallest μ (to a relative 1e-9) whose ``releases`` compositions spend ≤ ``target``."""
    if not (target > 0 and math.isfinite(target)) or releases < 1:
        raise ValueError(f"mu_for_epsilon: need a finite target > 0 and releases >= 1, got {target}, {releases}")
    hi = max(l2 * l2, 1e-12)
    while epsilon(hi, l2, l1, releases, delta) > target:
        hi *= 4.0
    lo = hi / 4.0
    while epsilon(lo, l2, l1, releases, delta) <= target:
        lo /= 4.0
    while hi / lo > 1.0 + 1e-9:  # ε(μ) decreases in μ: keep ε(lo) > target >= ε(hi)
        mid = math.sqrt(lo * hi)
        if epsilon(mid, l2, l1, releases, delta) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def tail_bound(mu: float, log2_p: float = TAIL_LOG2) -> int:
    """An integer T with P(|Sk(μ)| > T) ≤ 2^-log2_p (Chernoff: P(X ≥ a) ≤ exp(−ψ(a)),
    ψ(a) = a·asinh(a/2μ) − 2μ(sqrt(1 + (a/2μ)²) − 1))."""
    if mu <= 0:
        return 0
    need = (log2_p + 1.0) * math.log(2.0)  # two tails

    def psi(a: float) -> float:
        y = a / (2.0 * mu)
        return a * math.asinh(y) - 2.0 * mu * y * y / (math.sqrt(1.0 + y * y) + 1.0)

    hi = 1
    while psi(hi) < need:
        hi *= 2
    lo = hi // 2  # psi(lo) < need unless lo == 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if psi(mid) >= need else (mid, hi)
    return hi - 1  # P(X > hi - 1) = P(X ≥ hi)


class SkellamBudget:
    """The same interface as accountant.Budget: ε after k rounds, and whether k rounds fit."""

    def __init__(self, mu: float, l2: float, l1: float, delta: float, limit: float | None) -> None:
        self.mu, self.l2, self.l1, self.delta = mu, l2, l1, delta
        self.limit = math.inf if limit is None else limit

    def spent(self, units: int) -> float:
        return epsilon(self.mu, self.l2, self.l1, units, self.delta)

    def affordable(self, units: int) -> bool:
        return self.limit == math.inf or self.spent(units) <= self.limit * (1 + 1e-9)


@dataclass(frozen=True)
class Calibration:
    """Public parameters of the mechanism at one fixed-point scale (all in quanta but γ)."""

    scale: float  # γ: quanta per unit, the same for data and weight coordinates
    l2: float  # Δ2
    l1: float  # Δ1
    mu: float  # the sum of at least ``shares`` contributions carries Sk(≥ mu)
    share: float  # mu / shares: each client's own Sk parameter
    word_bound: int  # ceil(Δ2) + tail(share): a client's noised coordinate, w.p. ≥ 1 − 2^-100


def calibrate(sensitivity: float, dim: int, shares: int, cap: int, mu_for: Callable[[float, float], float],
              scale: float | None = None) -> Calibration:
    """The finest scale γ at which a client's noised coordinates stay within ``cap`` quanta
    (so that the sum of all clients cannot wrap) — or check an explicit ``scale``.
    ``mu_for(Δ2, Δ1)`` gives the central μ. Raises ValueError when nothing fits."""

    def at(g: float) -> Calibration:
        l2 = rounded_l2_bound(g * sensitivity, dim)
        l1 = rounded_l1_bound(l2, dim)
        mu = mu_for(l2, l1)
        share = mu / shares
        return Calibration(g, l2, l1, mu, share, math.ceil(l2) + tail_bound(share))

    def fits(c: Calibration) -> bool:
        return c.share <= POISSON_MAX and c.word_bound * (1 + 1e-8) + 1 <= cap

    if scale is not None:
        c = at(scale)
        if c.share > POISSON_MAX:
            raise ValueError(f"scale {scale:g}: each client's noise Sk({c.share:.4g}) is beyond the sampler's "
                             f"exact range (mean <= 2^50)")
        if not fits(c):
            raise ValueError(f"scale {scale:g}: a client's noised coordinate can reach {c.word_bound} quanta "
                             f"(Δ2 = {c.l2:.4g}, noise Sk({c.share:.4g})), above the {cap} that keeps the sum "
                             "from wrapping")
        return c
    hi = cap / sensitivity  # γ·S ≤ Δ2 ≤ word bound: nothing finer can fit
    lo = hi * 2.0 ** -60
    if not fits(at(lo)):
        c = at(lo)
        raise ValueError(f"no fixed-point scale fits: even at γ = {lo:.3g} a client's noised coordinate "
                         f"needs {c.word_bound} quanta (Δ2 = {c.l2:.4g} from rounding {dim} coordinates), "
                         f"above {cap}")
    if fits(at(hi)):
        return at(hi)
    for _ in range(48):  # log-scale bisection: fits(lo), not fits(hi)
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if fits(at(mid)) else (lo, mid)
    c = at(lo)
    if c.l2 > 1.25 * c.scale * sensitivity:
        log.warning("Skellam: rounding to %d integer coordinates inflates the sensitivity from %.4g to "
                    "%.4g quanta; more bits per word (secure_sum.options.modulus_bits = 64) allow a finer "
                    "scale and less noise", dim, c.scale * sensitivity, c.l2)
    return c
