"""Relative gain, weights, and the server update (ratio of two sums, plain or FedAdam)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secure_fgrpo.federation.update import ServerOptConfig, ServerOptState, apply_update, ratio_of_sums
from secure_fgrpo.gain import GainConfig, GainState, relative_gain, weight, weight_bound


def test_first_round_gain_is_zero_and_sets_scale() -> None:
    g, s = relative_gain(GainState(), reward=0.4, reward_spread=0.2, cfg=GainConfig())
    assert g == 0.0 and s.baseline == 0.4 and s.deviation == 0.2 and s.rounds == 1


def test_zscore_gain_matches_hand_computation() -> None:
    cfg = GainConfig(beta=0.5, clip=10.0)
    s = GainState(baseline=0.4, deviation=0.2, rounds=1)
    g, s2 = relative_gain(s, reward=0.5, reward_spread=0.0, cfg=cfg)
    assert g == pytest.approx(0.1 / (0.2 + 1e-6))
    assert s2.baseline == pytest.approx(0.45) and s2.deviation == pytest.approx(0.15)


def test_gain_is_invariant_to_reward_scale() -> None:
    """A 0..10 hospital and a 0..1 hospital with the same relative history get the same gain."""
    cfg = GainConfig()
    rewards = [0.3, 0.35, 0.5, 0.45, 0.6]
    small, big = GainState(), GainState()
    for r in rewards:
        g1, small = relative_gain(small, r, 0.1, cfg)
        g10, big = relative_gain(big, 10 * r, 1.0, cfg)
        assert g1 == pytest.approx(g10, rel=1e-4)


def test_ratio_gain_and_clip() -> None:
    cfg = GainConfig(kind="ratio", clip=0.5)
    g, _ = relative_gain(GainState(baseline=0.2, deviation=0.1, rounds=1), 0.25, 0.0, cfg)
    assert g == pytest.approx(0.05 / 0.2, rel=1e-4)
    g, _ = relative_gain(GainState(baseline=0.2, deviation=0.1, rounds=1), 0.9, 0.0, cfg)
    assert g == 0.5


def test_weights_per_strategy() -> None:
    cfg = GainConfig(alpha=0.5, tau=2.0, clip=1.0)
    assert weight("fgrpo", 16, 1.0, cfg) == pytest.approx(4 * math.exp(0.5))
    assert weight("fedavg", 16, 1.0, cfg) == 16.0
    assert weight("uniform", 16, 1.0, cfg) == 1.0
    assert weight_bound("fgrpo", 16, cfg) == pytest.approx(4 * math.exp(0.5))
    with pytest.raises(ValueError, match="strategy"):
        weight("median", 1, 0.0, cfg)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"beta": 1.0}, {"clip": 0.0}, {"tau": -1.0}, {"kind": "diff"}])
def test_gain_config_refuses_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        GainConfig(**bad)


def test_server_update_is_ratio_of_sums_and_fedadam_moves_by_lr() -> None:
    deltas = [np.array([1.0, 0.0]), np.array([0.0, 2.0])]
    e = [3.0, 1.0]
    total = np.concatenate([sum(w * d for w, d in zip(e, deltas, strict=True)), [sum(e)]])
    upd = ratio_of_sums(total)
    assert np.allclose(upd, [0.75, 0.5])
    new, _ = apply_update(np.zeros(2, np.float32), upd, ServerOptConfig(lr=0.5), ServerOptState())
    assert np.allclose(new, [0.375, 0.25])
    cfg = ServerOptConfig(kind="fedadam", lr=0.1, beta1=0.0, beta2=0.0, tau=1e-9)
    new, st = apply_update(np.zeros(2, np.float32), upd, cfg, ServerOptState())
    assert np.allclose(new, [0.1, 0.1], atol=1e-6)  # sign(update) * lr when betas are 0
    assert st.m is not None and st.v is not None
    with pytest.raises(ValueError, match="sum of weights"):
        ratio_of_sums(np.array([1.0, 0.0]))
