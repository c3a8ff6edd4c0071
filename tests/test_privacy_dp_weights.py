"""FGRPO's weight under example-level DP: each DP-SGD step also releases noisy sums of bounded
per-record reward moments, so the gain, the weight e_i and n_i are post-processing of DP releases
(privacy/plan.py calibrates the joint mechanism; grpo/trainer.py turns the sums into r_i and s_i)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.grpo.trainer import _private_result
from secure_fgrpo.privacy.config import ExampleDPSettings
from secure_fgrpo.privacy.dpsgd import GroupDPSGD, record_moments
from secure_fgrpo.privacy.noise import SecureRandom


def _engine(reward_noise: float | None) -> GroupDPSGD:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    settings = ExampleDPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.5, reward_noise=reward_noise)
    return GroupDPSGD(settings, model, torch.optim.SGD(model.parameters(), lr=0.1), 10,
                      source=SecureRandom(bytes(32)))  # fixed test key: a deterministic test


def test_record_moments_clip_each_record_to_the_unit_interval() -> None:
    rewards = torch.tensor([-1.0, 0.0, 5.0, 12.0, 10.0, 10.0])  # three records of g = 2, bound 10
    first, second = record_moments(rewards, 2, 10.0)
    assert first == pytest.approx([0.0, 0.75, 1.0]) and second == pytest.approx([0.0, 0.625, 1.0])


def test_released_moment_sums_carry_noise_of_the_planned_std() -> None:
    engine, draws = _engine(3.0), []
    for _ in range(4000):
        draws.extend(engine.release_moments([0.25, 1.0], [0.0, 1.0]))
    engine.close()
    firsts, seconds = draws[0::2], draws[1::2]
    n = len(draws) / 2
    for values, true in ((firsts, 1.25), (seconds, 1.0)):
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        assert abs(mean - true) < 5 * 3.0 / math.sqrt(n)
        assert abs(std - 3.0) < 5 * 3.0 / math.sqrt(2 * n)


def test_release_refuses_unclipped_moments_and_plans_without_rewards() -> None:
    engine = _engine(1.0)
    with pytest.raises(ValueError, match="clipped"):
        engine.release_moments([1.5], [0.2])
    engine.close()
    engine = _engine(None)
    with pytest.raises(RuntimeError, match="only FGRPO"):
        engine.release_moments([], [])
    engine.close()


def test_round_statistics_come_from_the_noisy_sums_over_the_public_expected_batch() -> None:
    res = _private_result((30.0, 20.0), 60.0, 0.01, 10.0, [])
    assert res.mean_reward == pytest.approx(5.0) and res.groups == 60
    assert res.reward_std == pytest.approx(10.0 * math.sqrt(20 / 60 - 0.25))
    low = _private_result((-4.0, -1.0), 60.0, 0.01, 10.0, [])  # noise can push a sum below 0: clamped
    assert low.mean_reward == 0.0


def test_noisy_spread_is_floored_at_the_noise_so_the_first_gain_stays_finite() -> None:
    """A variance estimate that noise drove to 0 would make the next z-score gain diff / 1e-6."""
    flat = _private_result((30.0, 14.0), 60.0, 0.02, 10.0, [])  # E[b] - E[a]^2 < 0: clamped
    assert flat.reward_std == pytest.approx(10.0 * 0.02)
    assert _private_result((30.0, 20.0), 60.0, 0.5, 10.0, []).reward_std == pytest.approx(5.0)


@pytest.mark.parametrize("strategy", ["fgrpo", "fedavg"])
def test_weights_under_example_level_dp_use_public_counts_and_noisy_rewards(
        strategy: str, quick_model_dir, tmp_path) -> None:
    cfg = config_from_dict(small_run(**{"privacy.example_level": {"epsilon": 8.0}, "federation.strategy": strategy}))
    Federation(cfg, tmp_path / "run").run()
    expected = round(cfg.grpo.steps * (cfg.grpo.oversample / cfg.data.train_size) * cfg.data.train_size)
    for c in cfg.clients:
        rows = [
            json.loads(x) for x in (tmp_path / "run" / "clients" / c.name / "metrics.jsonl").read_text().splitlines()
        ]
        assert [r["count"] for r in rows] == [expected] * cfg.federation.rounds  # public, not the data's count
        for r in rows:
            assert 0.0 <= r["mean_reward"] <= c.reward.scale and r["reward_std"] >= 0.0
            assert math.isfinite(r["weight"]) and 0 < r["weight"] <= cfg.weight_bound
            assert 0 < r["dp_example_epsilon"] <= 8.0
            if strategy == "fedavg":  # n_i alone: nothing about the rewards enters e_i
                assert r["weight"] == expected
