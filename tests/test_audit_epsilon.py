"""The one-shot ε estimator (Andrew et al., ICLR 2024) recovers the known ε of a Gaussian
mechanism, sits below the accountant's ε under DP, and reports separation without DP."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secure_fgrpo.audit.attacks import sum_canary_audit
from secure_fgrpo.audit.epsilon import auc, gaussian_pair_epsilon, gdp_epsilon, one_shot_epsilon


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0, 4.0])
def test_numeric_pair_epsilon_matches_gaussian_dp(mu: float) -> None:
    assert gaussian_pair_epsilon(mu, 1.0, 0.0, 1.0, 1e-5) == pytest.approx(gdp_epsilon(mu, 1e-5), rel=1e-3)


def test_gdp_epsilon_known_values() -> None:
    # δ(ε) of μ-GDP evaluated at the returned ε equals the target δ.
    from scipy.stats import norm

    for mu, delta in ((1.0, 1e-5), (3.0, 1e-6)):
        eps = gdp_epsilon(mu, delta)
        back = norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)
        assert back == pytest.approx(delta, rel=1e-6)
    assert gdp_epsilon(0.0, 1e-5) == 0.0 and 0 < gdp_epsilon(1e-3, 1e-5) < 0.01


@pytest.mark.parametrize("mu", [1.0, 2.0])
def test_estimator_recovers_a_gaussian_mechanism(mu: float) -> None:
    """Observed statistics N(μ, 1), unobserved N(0, 1): a μ-GDP release with known ε."""
    rng = np.random.default_rng(7)
    true = gdp_epsilon(mu, 1e-5)
    est = one_shot_epsilon(rng.normal(mu, 1, 1000), rng.normal(0, 1, 1000), 1e-5)
    assert est.epsilon == pytest.approx(true, rel=0.12)
    assert est.epsilon_lower <= true


def test_estimator_at_chance_and_at_separation() -> None:
    rng = np.random.default_rng(8)
    same = one_shot_epsilon(rng.normal(0, 1, 500), rng.normal(0, 1, 500), 1e-5)
    assert same.epsilon_lower < 0.5 and abs(same.auc - 0.5) < 0.1
    apart = one_shot_epsilon(rng.normal(10, 0.1, 50), rng.normal(0, 0.1, 50), 1e-5)
    assert apart.auc == 1.0 and apart.epsilon > 60
    assert auc(np.array([1.0, 2.0]), np.array([0.0, 1.0])) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="at least two"):
        one_shot_epsilon(np.array([1.0]), np.array([0.0, 1.0]), 1e-5)


@pytest.mark.parametrize("z, rounds", [(1.0, 5), (2.0, 4)])
def test_canary_audit_of_noisy_sums_sits_below_the_accountant(z: float, rounds: int) -> None:
    audit = sum_canary_audit(noise_multiplier=z, rounds=rounds, delta=1e-5, seed=1)
    exact = gdp_epsilon(math.sqrt(rounds) / z, 1e-5)
    assert audit.accountant_epsilon == pytest.approx(exact)
    from secure_fgrpo.audit.attacks import _opacus_epsilon

    rdp = _opacus_epsilon(z, 1.0, rounds, 1e-5)  # what the project's accountant reports
    assert audit.estimate.epsilon_lower <= exact <= rdp and audit.estimate.epsilon <= rdp
    # The canaries have full sensitivity: the estimate is close to the truth, not vacuous.
    assert audit.estimate.epsilon == pytest.approx(exact, rel=0.2)


def test_canary_audit_with_subsampling_stays_below_opacus() -> None:
    audit = sum_canary_audit(noise_multiplier=1.0, rounds=5, sample_rate=0.5, delta=1e-5, seed=2)
    assert audit.estimate.epsilon_lower <= audit.accountant_epsilon


def test_canary_audit_without_noise_shows_membership() -> None:
    audit = sum_canary_audit(noise_multiplier=0.0, rounds=3, seed=3)
    assert audit.accountant_epsilon == math.inf
    assert audit.estimate.auc > 0.99 and audit.estimate.epsilon_lower > 20
