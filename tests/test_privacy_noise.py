"""Secret Gaussian noise and client-level noise on [e·Δ, e]: distributions checked statistically,
the sensitivity clip, the widened public box, and the offset removed from the sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from secure_fgrpo.privacy.client_dp import ClientNoise, sensitivity, share_std
from secure_fgrpo.privacy.noise import SecureRandom
from secure_fgrpo.secure_sum.base import SumSpec


def test_secure_normal_is_standard_gaussian() -> None:
    x = SecureRandom(bytes(range(32))).normal(200_000, 2.5)
    assert x.std() == pytest.approx(2.5, rel=0.01)
    assert abs(x.mean()) < 4 * 2.5 / math.sqrt(x.size)
    assert stats.kstest(x / 2.5, "norm").pvalue > 1e-3


def test_streams_are_keyed_and_fresh_by_default() -> None:
    assert np.array_equal(SecureRandom(bytes(32)).normal(8, 1.0), SecureRandom(bytes(32)).normal(8, 1.0))
    assert not np.array_equal(SecureRandom().normal(8, 1.0), SecureRandom().normal(8, 1.0))
    with pytest.raises(ValueError, match="32 bytes"):
        SecureRandom(b"short")


def test_sensitivity_counts_the_weight_coordinate() -> None:
    assert sensitivity(3.0, 4.0) == pytest.approx(3.0 * math.sqrt(17.0))
    worst = np.concatenate([np.full(16, 3.0), [3.0]])  # ‖e·Δ‖ = 12 = e_max·C and e = e_max
    assert np.linalg.norm(worst) == pytest.approx(sensitivity(3.0, 4.0))
    noise = ClientNoise.for_round(0.0, weight_max=3.0, delta_clip=4.0, dim=17)
    assert np.linalg.norm(noise.privatize(10 * worst)) == pytest.approx(sensitivity(3.0, 4.0))


@pytest.mark.parametrize("mechanism,survivors", [("distributed", 3), ("distributed", 5), ("local", 1)])
def test_the_sum_of_shares_carries_at_least_the_target_variance(mechanism: str, survivors: int) -> None:
    """Distributed shares are calibrated for the threshold t = 3 survivors: any t..n of them sum
    to at least σ²; exactly σ² at t."""
    sigma, t, dim, reps = 2.0, 3, 4001, 25
    std = share_std(sigma, mechanism, t)
    noise = ClientNoise.for_round(std, weight_max=1.0, delta_clip=1.0, dim=dim)
    zero = np.zeros(dim)
    sums = np.stack([sum(noise.remove_offset(noise.privatize(zero), 1) for _ in range(survivors))
                     for _ in range(reps)])
    target = sigma ** 2 * (survivors / t if mechanism == "distributed" else survivors)
    assert sums.var() == pytest.approx(target, rel=0.03)  # 100k samples: sd of the estimate ~0.5%
    assert sums.var() >= sigma ** 2 * 0.97
    assert abs(sums[:, -1].mean()) < 5 * math.sqrt(target / reps)  # the weight offset is removed exactly


def test_privatize_clips_to_the_sensitivity_and_fits_the_widened_box() -> None:
    spec = SumSpec(round=1, dim=1001, data_bound=8.0, weight_bound=2.0, participants=("a", "b", "c"),
                   threshold=2)
    noise = ClientNoise.for_round(std=0.0, weight_max=2.0, delta_clip=4.0, dim=spec.dim)
    big = np.concatenate([np.full(1000, 5.0), [6.0]])  # weight 3× e_max, data far out of bounds
    out = noise.privatize(big)
    assert out[-1] == pytest.approx(2.0)  # weight clipped to e_max (offset is 0 without noise)
    assert np.linalg.norm(out[:-1]) == pytest.approx(8.0)  # data clipped to e_max·C
    assert np.allclose(out[:-1], out[0])  # by scaling: the direction is kept
    noisy = ClientNoise.for_round(std=3.0, weight_max=2.0, delta_clip=4.0, dim=spec.dim)
    wide = noisy.widen(spec)
    for _ in range(20):
        wide.check_input(noisy.privatize(big), "a")  # a noised vector always passes the public check
    assert wide.weight_bound == pytest.approx(2.0 + 2 * 8 * 3.0)
    assert wide.data_bound > 8.0 + 3.0 * math.sqrt(1000)


def test_refuses_a_negative_or_non_finite_input() -> None:
    noise = ClientNoise.for_round(1.0, 1.0, 1.0, 3)
    with pytest.raises(ValueError, match="negative"):
        noise.privatize(np.array([0.1, 0.1, -1.0]))
    with pytest.raises(ValueError, match="finite"):
        noise.privatize(np.array([np.nan, 0.1, 1.0]))
    with pytest.raises(ValueError, match="mechanism"):
        share_std(1.0, "skellam", 3)
