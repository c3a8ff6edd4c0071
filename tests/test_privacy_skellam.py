"""The Skellam mechanism's math (privacy/skellam.py, the Poisson sampler in privacy/noise.py),
each checked against something computed independently here: scipy's pmfs, the exact Rényi
divergence between shifted Skellam distributions by direct summation, Opacus' Gaussian
accountant in the large-μ limit. Random draws use a fixed test key, so every test is
deterministic. Convention: Sk(μ) = Poisson(μ) − Poisson(μ), variance 2μ."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from secure_fgrpo.privacy import skellam as sk
from secure_fgrpo.privacy.accountant import epsilon as gaussian_epsilon
from secure_fgrpo.privacy.noise import POISSON_MAX, SecureRandom, poisson_log_pmf

P_MIN = 1e-3  # goodness-of-fit p-values below this fail (deterministic draws: no flakiness)


def _rng(tag: int) -> SecureRandom:
    return SecureRandom(bytes([tag]) * 32)


def _chi_square_p(draws: np.ndarray, pmf) -> float:
    """Pearson's test of integer draws against ``pmf``; cells with expectation < 5 are pooled
    into the two tails."""
    lo, hi = int(draws.min()), int(draws.max())
    ks = np.arange(lo, hi + 1)
    expected = pmf(ks) * draws.size
    observed = np.bincount(draws - lo, minlength=ks.size).astype(float)
    keep = expected >= 5
    first, last = np.argmax(keep), len(keep) - 1 - np.argmax(keep[::-1])
    obs = np.concatenate([[observed[:first + 1].sum()], observed[first + 1:last], [observed[last:].sum()]])
    exp = np.concatenate([[expected[:first + 1].sum()], expected[first + 1:last], [expected[last:].sum()]])
    exp *= obs.sum() / exp.sum()  # the support [lo, hi] holds all but a negligible tail
    return float(stats.chisquare(obs, exp).pvalue)


# --- Poisson and Skellam sampling -----------------------------------------------------------

def test_log_pmf_matches_a_high_precision_reference() -> None:
    """scipy's own logpmf cancels at large means (error ~1e-5 at 3e9), so the reference is
    mpmath at 50 digits (mpmath ships with torch's sympy)."""
    mpmath = pytest.importorskip("mpmath", reason="the high-precision reference needs mpmath")
    mpmath.mp.dps = 50
    for lam in (10.0, 123.4, 1e5, 3e9, 1e14):
        k = np.floor(lam + np.linspace(-8, 8, 9) * math.sqrt(lam)).clip(0)
        ref = [float(-mpmath.mpf(lam) + x * mpmath.log(lam) - mpmath.loggamma(x + 1)) for x in k]
        assert np.allclose(poisson_log_pmf(k, lam), ref, rtol=0, atol=1e-8)
    assert poisson_log_pmf(np.array([0.0, 3.0]), 2.0) == pytest.approx(stats.poisson.logpmf([0, 3], 2.0))


@pytest.mark.parametrize("lam", [0.4, 3.0, 9.9, 10.0, 37.5, 1000.0])
def test_poisson_matches_its_pmf(lam: float) -> None:
    draws = _rng(1).poisson(lam, 60_000)
    assert draws.dtype == np.int64 and draws.min() >= 0
    assert _chi_square_p(draws, lambda k: stats.poisson.pmf(k, lam)) > P_MIN
    assert draws.mean() == pytest.approx(lam, abs=5 * math.sqrt(lam / draws.size))


@pytest.mark.parametrize("lam", [1e12, POISSON_MAX])
def test_poisson_with_a_huge_mean_is_normal_with_the_right_moments(lam: float) -> None:
    draws = _rng(2).poisson(lam, 40_000)
    z = (draws - lam) / math.sqrt(lam)  # exact in float64: draws < 2^53
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    assert z.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / z.size))
    assert stats.kstest(z, "norm").pvalue > P_MIN
    assert np.all(draws == np.round(draws))


def test_poisson_refuses_bad_means() -> None:
    for bad in (-1.0, math.inf, math.nan, 2 * POISSON_MAX):
        with pytest.raises(ValueError, match="Poisson mean"):
            _rng(3).poisson(bad, 3)
    assert _rng(3).poisson(0.0, 4).tolist() == [0, 0, 0, 0]


def test_a_fixed_key_repeats_and_a_fresh_key_does_not() -> None:
    assert np.array_equal(_rng(4).skellam(50.0, 100), _rng(4).skellam(50.0, 100))
    assert not np.array_equal(SecureRandom().skellam(1e6, 100), SecureRandom().skellam(1e6, 100))


@pytest.mark.parametrize("mu,t", [(6.0, 3), (90.0, 3), (400.0, 8)])
def test_the_sum_of_t_shares_is_the_central_skellam(mu: float, t: int) -> None:
    """Each of t clients adds Sk(μ/t): the sum is exactly Sk(μ) (closed under summation)."""
    src = _rng(5)
    total = sum(src.skellam(mu / t, 40_000) for _ in range(t))
    assert _chi_square_p(total, lambda k: stats.skellam.pmf(k, mu, mu)) > P_MIN
    assert total.var() == pytest.approx(2 * mu, rel=0.04)
    single = _rng(6).skellam(mu / t, 40_000)  # and one share alone is visibly not Sk(μ)
    assert _chi_square_p(single, lambda k: stats.skellam.pmf(k, mu, mu)) < 1e-6


# --- conditional randomized rounding --------------------------------------------------------

def test_rounded_bounds_follow_the_published_formula() -> None:
    c, d, beta = 37.0, 1000, math.exp(-0.5)
    by_hand = math.sqrt(c ** 2 + d / 4 + math.sqrt(2 * math.log(1 / beta)) * (c + math.sqrt(d) / 2))
    assert sk.rounded_l2_bound(c, d) == pytest.approx(by_hand)
    assert sk.rounded_l2_bound(0.1, 1, beta=1e-30) == pytest.approx(1.1)  # the c + sqrt(d) branch
    assert sk.rounded_l1_bound(3.0, 100) == 9.0 and sk.rounded_l1_bound(30.0, 100) == 300.0


def test_conditional_rounding_stays_within_the_bound_and_is_nearly_unbiased() -> None:
    gen = np.random.default_rng(0)  # the input is not secret
    d, c = 64, 6.0
    x = gen.standard_normal(d)
    x *= c / np.linalg.norm(x)
    bound = sk.rounded_l2_bound(c, d)
    src = _rng(7)
    draws = np.stack([sk.conditional_round(x, bound, src) for _ in range(3000)])
    assert draws.dtype == np.int64
    assert np.all(np.abs(draws - x) < 1)  # each coordinate goes to a neighbouring integer
    assert np.sqrt((draws.astype(float) ** 2).sum(axis=1)).max() <= bound
    assert np.abs(draws.mean(axis=0) - x).max() < 0.05  # ±0.5 steps: 5.5 standard errors
    # A bound the plain rounding would usually break forces re-draws, and is still never exceeded.
    tight = float(np.sqrt(np.median([(r.astype(float) ** 2).sum() for r in draws[:200]])))
    forced = np.stack([sk.conditional_round(x, tight, src) for _ in range(200)])
    assert np.sqrt((forced.astype(float) ** 2).sum(axis=1)).max() <= tight


def test_conditional_rounding_refuses_an_input_beyond_its_sensitivity() -> None:
    with pytest.raises(ValueError, match="no rounding within"):
        sk.conditional_round(np.full(10, 5.0), sk.rounded_l2_bound(1.0, 10), _rng(8))
    with pytest.raises(ValueError, match="finite"):
        sk.conditional_round(np.array([1.0, np.nan]), 10.0, _rng(8))


# --- the RDP bound against the exact Rényi divergence -----------------------------------------

def exact_renyi(alpha: int, mu: float, shift: int) -> float:
    """D_α(Sk(μ) + shift ‖ Sk(μ)) by direct summation: P(Sk(μ) = k) = ive(|k|, 2μ) (scipy)."""
    width = int(shift + 80 + 60 * math.sqrt(2 * mu))
    k = np.arange(-width, width + 1)
    with np.errstate(divide="ignore"):
        log_q = np.log(special.ive(np.abs(k), 2 * mu))
        log_p = np.log(special.ive(np.abs(k - shift), 2 * mu))
    ok = np.isfinite(log_p) & np.isfinite(log_q)
    terms = alpha * log_p[ok] + (1 - alpha) * log_q[ok]
    assert terms[0] < terms.max() - 60 and terms[-1] < terms.max() - 60  # the truncated tails are negligible
    return float(special.logsumexp(terms) / (alpha - 1))


@pytest.mark.parametrize("mu", [0.5, 2.0, 10.0, 100.0, 1e4])
@pytest.mark.parametrize("shift", [1, 3])
def test_the_bound_is_never_below_the_exact_divergence(mu: float, shift: int) -> None:
    orders = (2, 3, 8, 32)
    bound = sk.rdp(mu, l2=shift, l1=shift, orders=orders)
    exact = np.array([exact_renyi(a, mu, shift) for a in orders])
    assert np.all(bound >= exact * (1 - 1e-9))


def test_the_bound_is_tight_for_large_mu_and_tends_to_the_gaussian() -> None:
    alpha, shift = 8, 5
    gauss = lambda mu: alpha * shift ** 2 / (2 * 2 * mu)  # noqa: E731  αΔ²/(2σ²), σ² = 2μ
    ratios = []
    for mu in (10.0, 1e3, 1e5):
        bound = float(sk.rdp(mu, shift, shift, orders=(alpha,))[0])
        ratios.append(bound / gauss(mu))
        if mu >= 1e3:
            assert bound <= exact_renyi(alpha, mu, shift) * 1.01
    assert ratios[0] > ratios[1] > ratios[2] > 1.0 and ratios[2] < 1 + 1e-3


def test_epsilon_composes_rounds_and_matches_the_gaussian_limit() -> None:
    l2, d = 1000.0, 10_000
    l1 = sk.rounded_l1_bound(l2, d)
    mu = 5e5
    # By hand: R rounds add RDP, then the Balle et al. conversion at every order.
    a = np.array(sk.ORDERS, dtype=float)
    one = a * l2 ** 2 / (4 * mu) + np.minimum(((2 * a - 1) * l2 ** 2 + 6 * l1) / (16 * mu ** 2), 3 * l1 / (4 * mu))
    for rounds in (1, 5):
        by_hand = np.min(rounds * one - (np.log(1e-5) + np.log(a)) / (a - 1) + np.log((a - 1) / a))
        assert sk.epsilon(mu, l2, l1, rounds, 1e-5) == pytest.approx(by_hand, rel=1e-12)
    assert sk.epsilon(mu, l2, l1, 0, 1e-5) == 0.0
    # Large μ: Skellam ≈ Gaussian with σ = sqrt(2μ) quanta, i.e. noise multiplier sqrt(2μ)/Δ2.
    z = math.sqrt(2 * mu) / l2
    assert sk.epsilon(mu, l2, l1, 5, 1e-5) == pytest.approx(gaussian_epsilon([(z, 1.0, 5)], 1e-5), rel=0.01)


@pytest.mark.parametrize("target,rounds", [(8.0, 2), (1.0, 20), (30.0, 1)])
def test_mu_for_epsilon_round_trips(target: float, rounds: int) -> None:
    l2 = 5000.0
    l1 = sk.rounded_l1_bound(l2, 4000)
    mu = sk.mu_for_epsilon(target, 1e-5, l2, l1, rounds)
    assert target * (1 - 1e-6) <= sk.epsilon(mu, l2, l1, rounds, 1e-5) <= target
    assert sk.epsilon(mu * (1 - 1e-6), l2, l1, rounds, 1e-5) > sk.epsilon(mu, l2, l1, rounds, 1e-5)
    budget = sk.SkellamBudget(mu, l2, l1, 1e-5, target)
    assert budget.affordable(rounds) and not budget.affordable(rounds + 1)
    assert budget.spent(rounds) == pytest.approx(target, rel=1e-6)
    assert rounds == 1 or budget.spent(1) < budget.spent(rounds)


@pytest.mark.parametrize("mu", [0.3, 5.0, 1e3, 1e6])
def test_tail_bound_holds_and_is_not_far_off(mu: float) -> None:
    t = sk.tail_bound(mu, log2_p=20)
    assert 2 * stats.skellam.sf(t, mu, mu) <= 2.0 ** -20
    exact = int(stats.skellam.isf(2.0 ** -21, mu, mu))  # the exact two-sided quantile
    assert t <= 1.25 * exact + 3
    assert sk.tail_bound(mu) > t and sk.tail_bound(0.0) == 0


# --- calibration of the scale -------------------------------------------------------------------

def test_calibrate_picks_the_finest_scale_that_fits_and_refuses_one_that_wraps() -> None:
    sens, d, t, cap = 4.2, 5000, 2, 10 ** 7  # a small cap: the word bound binds, not the sampler

    def mu_for(l2: float, l1: float) -> float:
        return sk.mu_for_epsilon(8.0, 1e-5, l2, l1, 3)

    c = sk.calibrate(sens, d, t, cap, mu_for)
    assert c.word_bound <= cap and c.share == pytest.approx(c.mu / t)
    assert c.word_bound == math.ceil(c.l2) + sk.tail_bound(c.share)
    finer = sk.calibrate(sens, d, t, cap, mu_for, scale=c.scale * 0.999)  # a coarser γ fits too
    assert finer.word_bound < c.word_bound
    with pytest.raises(ValueError, match="wrapping"):
        sk.calibrate(sens, d, t, cap, mu_for, scale=c.scale * 1.1)
    with pytest.raises(ValueError, match="no fixed-point scale fits"):
        sk.calibrate(sens, 10 ** 16, t, cap, mu_for)  # rounding 10^16 coordinates needs 5·10^7 quanta
    big = sk.calibrate(sens, d, t, 2 ** 40, mu_for)  # 64-bit words: the sampler's range binds
    assert big.share <= POISSON_MAX and big.word_bound < 2 ** 40
    with pytest.raises(ValueError, match="sampler"):
        sk.calibrate(sens, d, t, 2 ** 40, mu_for, scale=big.scale * 1.01)
