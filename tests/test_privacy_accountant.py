"""The accountant wrapper against values computed independently here: the Gaussian mechanism's
RDP in closed form, the sampled Gaussian's RDP by binomial expansion at integer orders
(Mironov, Talwar & Zhang 2019, §3.3), and the exact (ε, δ) curve of the Gaussian mechanism
(Balle & Wang 2018, Thm 8)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaln, logsumexp, ndtr

from secure_fgrpo.privacy.accountant import Budget, epsilon, noise_for

ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))  # the grid the RDP bound searches


def _rdp_to_eps(orders: np.ndarray, rdp: np.ndarray, delta: float) -> float:
    """Balle et al. 2020, Thm 21: eps = rdp + log((α-1)/α) - (log δ + log α)/(α-1), min over α."""
    return float(np.min(rdp + np.log((orders - 1) / orders) - (math.log(delta) + np.log(orders)) / (orders - 1)))


def _sampled_gaussian_rdp(q: float, z: float, alpha: int) -> float:
    """log(A_α)/(α-1), A_α = Σ_k C(α,k)(1-q)^(α-k) q^k exp((k²-k)/(2z²)), integer α."""
    k = np.arange(alpha + 1)
    log_binom = gammaln(alpha + 1) - gammaln(k + 1) - gammaln(alpha - k + 1)
    with np.errstate(divide="ignore"):
        terms = log_binom + (alpha - k) * np.log1p(-q) + k * np.log(q) + (k * k - k) / (2 * z * z)
    return float(logsumexp(terms)) / (alpha - 1)


def _exact_gaussian_eps(mu: float, delta: float) -> float:
    """ε such that δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2) equals ``delta``."""
    def gap(eps: float) -> float:
        return ndtr(-eps / mu + mu / 2) - math.exp(eps) * ndtr(-eps / mu - mu / 2) - delta
    return brentq(gap, 1e-9, 100.0)


@pytest.mark.parametrize("z,steps", [(1.0, 1), (1.5, 6), (4.0, 100)])
def test_rdp_without_sampling_matches_closed_form(z: float, steps: int) -> None:
    orders = np.array(ORDERS)
    mine = _rdp_to_eps(orders, steps * orders / (2 * z * z), 1e-5)
    assert epsilon([(z, 1.0, steps)], 1e-5, "rdp") == pytest.approx(mine, rel=1e-9)


@pytest.mark.parametrize("q,z,steps", [(0.15, 0.65, 4), (0.01, 1.1, 1000), (0.5, 2.0, 10)])
def test_subsampled_rdp_matches_binomial_expansion(q: float, z: float, steps: int) -> None:
    from opacus.accountants.analysis.rdp import compute_rdp

    ints = list(range(2, 64))
    mine = np.array([steps * _sampled_gaussian_rdp(q, z, a) for a in ints])
    theirs = compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=ints)
    np.testing.assert_allclose(theirs, mine, rtol=1e-8)
    # Our ε searches fractional orders too: never above the integer-order bound, and close to it.
    eps_int = _rdp_to_eps(np.array(ints, dtype=float), mine, 1e-5)
    ours = epsilon([(z, q, steps)], 1e-5, "rdp")
    assert 0.9 * eps_int <= ours <= eps_int * (1 + 1e-9)


@pytest.mark.parametrize("z,steps", [(1.0, 1), (2.0, 8)])
def test_prv_is_tight_and_rdp_is_an_upper_bound_for_the_gaussian(z: float, steps: int) -> None:
    exact = _exact_gaussian_eps(math.sqrt(steps) / z, 1e-5)
    assert epsilon([(z, 1.0, steps)], 1e-5, "prv") == pytest.approx(exact, abs=0.03)
    rdp = epsilon([(z, 1.0, steps)], 1e-5, "rdp")
    assert exact < rdp < 1.3 * exact


def test_noise_for_a_target_spends_just_under_it() -> None:
    z = noise_for(8.0, 1e-5, 0.15, 48, "rdp")
    spent = epsilon([(z, 0.15, 48)], 1e-5, "rdp")
    assert 7.95 < spent <= 8.0
    assert epsilon([(0.97 * z, 0.15, 48)], 1e-5, "rdp") > 8.0  # less noise would overspend


def test_epsilon_grows_with_rounds_and_the_budget_stops_at_the_calibrated_count() -> None:
    rounds, q, delta = 5, 0.75, 1e-5
    z = noise_for(4.0, delta, q, rounds, "rdp")
    budget = Budget(z, q, 1, delta, "rdp", limit=4.0)
    spent = [budget.spent(r) for r in range(rounds + 2)]
    assert spent[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(spent))
    assert budget.affordable(rounds) and not budget.affordable(rounds + 1)
    assert Budget(z, q, 1, delta, "rdp", limit=None).affordable(10 ** 4)  # no budget: never stops


def test_steps_per_unit_composes_like_one_longer_history() -> None:
    b = Budget(0.9, 0.2, 6, 1e-5, "rdp", limit=None)
    assert b.spent(3) == pytest.approx(epsilon([(0.9, 0.2, 18)], 1e-5, "rdp"))
    assert epsilon([], 1e-5) == 0.0
