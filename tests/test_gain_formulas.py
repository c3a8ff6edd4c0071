"""Every client- and server-side formula against numbers worked out by hand, with asymmetric
constants (β = 0.8, ε = 0.05, α = 0.25, τ = 0.25, G = 2.5, FedAdam β1 = 0.8, β2 = 0.6) so that a
swapped β/1-β, a dropped ε or a wrong exponent changes the result. Expected values are literal
arithmetic (shown in the comments), never computed with the project's own helpers; the mutation
record in tests/README.md lists the mutants these tests kill."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secure_fgrpo.federation.client import clip_l2
from secure_fgrpo.federation.update import ServerOptConfig, ServerOptState, apply_update, ratio_of_sums
from secure_fgrpo.gain import GainConfig, GainState, relative_gain, weight, weight_bound

CFG = GainConfig(kind="zscore", beta=0.8, eps=0.05, clip=2.5, tau=0.25, alpha=0.25)


def test_zscore_gain_and_ema_with_asymmetric_beta() -> None:
    # b = 0.4, s = 0.2, r = 0.7: diff = 0.3, g = 0.3 / (0.2 + 0.05) = 1.2
    # b' = 0.8*0.4 + 0.2*0.7 = 0.46 ; s' = 0.8*0.2 + 0.2*|0.3| = 0.22
    g, s = relative_gain(GainState(baseline=0.4, deviation=0.2, rounds=1), 0.7, 0.0, CFG)
    assert g == pytest.approx(1.2, abs=1e-12)
    assert s.baseline == pytest.approx(0.46, abs=1e-12)
    assert s.deviation == pytest.approx(0.22, abs=1e-12)
    assert s.rounds == 2


def test_negative_gain_and_deviation_uses_absolute_difference() -> None:
    # b = 0.46, s = 0.22, r = 0.1: diff = -0.36, g = -0.36 / (0.22 + 0.05) = -4/3
    # b' = 0.8*0.46 + 0.2*0.1 = 0.388 ; s' = 0.8*0.22 + 0.2*0.36 = 0.248 (|diff|, not diff)
    g, s = relative_gain(GainState(baseline=0.46, deviation=0.22, rounds=2), 0.1, 0.0, CFG)
    assert g == pytest.approx(-4 / 3, abs=1e-12)
    assert s.baseline == pytest.approx(0.388, abs=1e-12)
    assert s.deviation == pytest.approx(0.248, abs=1e-12)


@pytest.mark.parametrize(("reward", "expected"), [(1.5, 2.5), (-1.0, -2.5)])
def test_gain_is_clipped_on_both_sides(reward: float, expected: float) -> None:
    # b = 0.388, s = 0.248: (1.5 - 0.388) / 0.298 = 3.73 -> +G; (-1 - 0.388) / 0.298 = -4.66 -> -G
    g, _ = relative_gain(GainState(baseline=0.388, deviation=0.248, rounds=3), reward, 0.0, CFG)
    assert g == expected


def test_first_round_spread_is_the_next_scale() -> None:
    # Round 1: g = 0, b = 0.7, s = spread 0.3. Round 2, r = 0.9: g = 0.2 / (0.3 + 0.05) = 4/7
    g1, s = relative_gain(GainState(), 0.7, 0.3, CFG)
    assert (g1, s.baseline, s.deviation, s.rounds) == (0.0, 0.7, 0.3, 1)
    g2, _ = relative_gain(s, 0.9, 123.0, CFG)  # later spreads are not read
    assert g2 == pytest.approx(4 / 7, abs=1e-12)


def test_ratio_gain_divides_by_absolute_baseline() -> None:
    # b = -0.5 (a reward scale that goes negative), r = -0.2: g = 0.3 / (|-0.5| + 0.05) = 6/11;
    # the deviation (0.1) is not the ratio's scale.
    cfg = GainConfig(kind="ratio", beta=0.8, eps=0.05, clip=2.5, tau=0.25, alpha=0.25)
    g, s = relative_gain(GainState(baseline=-0.5, deviation=0.1, rounds=1), -0.2, 0.0, cfg)
    assert g == pytest.approx(6 / 11, abs=1e-12)
    assert s.baseline == pytest.approx(0.8 * -0.5 + 0.2 * -0.2, abs=1e-12)  # -0.44


def test_weights_with_asymmetric_alpha_and_tau() -> None:
    # FGRPO: 16^0.25 * exp(0.5 / 0.25) = 2 * e^2 ; at the clip: 2 * e^(2.5 / 0.25) = 2 * e^10
    assert weight("fgrpo", 16, 0.5, CFG) == pytest.approx(2 * math.exp(2.0), rel=1e-12)
    assert weight("fgrpo", 16, -0.5, CFG) == pytest.approx(2 * math.exp(-2.0), rel=1e-12)
    assert weight("fgrpo", 81, 0.0, GainConfig(alpha=0.75)) == pytest.approx(27.0, rel=1e-12)
    assert weight("fedavg", 16, 0.5, CFG) == 16.0  # n, not n^α
    assert weight("uniform", 16, 0.5, CFG) == 1.0
    assert weight_bound("fgrpo", 16, CFG) == pytest.approx(2 * math.exp(10.0), rel=1e-12)
    assert weight_bound("fedavg", 16, CFG) == 16.0
    assert weight_bound("uniform", 16, CFG) == 1.0


def test_clip_l2_scales_to_the_bound_and_reports_the_original_norm() -> None:
    # |(3, 4)| = 5 > 2.5: scaled by 2.5 / 5 -> (1.5, 2.0); inside the ball nothing changes.
    v, norm = clip_l2(np.array([3.0, 4.0]), 2.5)
    assert np.array_equal(v, [1.5, 2.0]) and norm == 5.0
    v, norm = clip_l2(np.array([0.3, -0.4]), 2.5)
    assert np.array_equal(v, [0.3, -0.4]) and norm == pytest.approx(0.5, abs=1e-15)


def test_ratio_of_sums_and_sgd_step() -> None:
    # e = (3, 0.5), Δ = (1, -2), (4, 2): Σ eΔ = (3 + 2, -6 + 1) = (5, -5), Σ e = 3.5
    # update = (10/7, -10/7); SGD with lr 0.25 from (1, 1): (1 + 2.5/7, 1 - 2.5/7)
    upd = ratio_of_sums(np.array([5.0, -5.0, 3.5]))
    assert np.allclose(upd, [10 / 7, -10 / 7], rtol=0, atol=1e-6)
    new, _ = apply_update(np.ones(2, np.float32), upd, ServerOptConfig(lr=0.25), ServerOptState())
    assert np.allclose(new, [1 + 2.5 / 7, 1 - 2.5 / 7], rtol=0, atol=1e-6)


def test_fedadam_two_steps_by_hand() -> None:
    # β1 = 0.8, β2 = 0.6, τ = 0.5, lr = 0.1, v0 = τ² = 0.25, m0 = 0; updates u1, u2.
    # step 1, u = ( 2.0, -0.5): m = 0.2u = (0.4, -0.1); v = 0.6*0.25 + 0.4u² = (1.75, 0.25)
    #   x1 = 0.1 * m / (sqrt(v) + 0.5) = (0.04 / (sqrt(1.75) + 0.5), -0.01 / 1.0)
    # step 2, u = (-1.0,  0.0): m = 0.8m + 0.2u = (0.12, -0.08); v = 0.6v + 0.4u² = (1.45, 0.15)
    #   x2 = x1 + (0.012 / (sqrt(1.45) + 0.5), -0.008 / (sqrt(0.15) + 0.5))
    cfg = ServerOptConfig(kind="fedadam", lr=0.1, beta1=0.8, beta2=0.6, tau=0.5)
    x1 = [0.04 / (math.sqrt(1.75) + 0.5), -0.01]
    x2 = [x1[0] + 0.012 / (math.sqrt(1.45) + 0.5), x1[1] - 0.008 / (math.sqrt(0.15) + 0.5)]
    x, st = apply_update(np.zeros(2, np.float32), np.array([2.0, -0.5], np.float32), cfg, ServerOptState())
    assert np.allclose(x, x1, rtol=0, atol=1e-7)
    assert np.allclose(st.m, [0.4, -0.1], atol=1e-7) and np.allclose(st.v, [1.75, 0.25], atol=1e-6)
    x, st = apply_update(x, np.array([-1.0, 0.0], np.float32), cfg, st)
    assert np.allclose(x, x2, rtol=0, atol=1e-7)
    assert np.allclose(st.m, [0.12, -0.08], atol=1e-7) and np.allclose(st.v, [1.45, 0.15], atol=1e-6)
