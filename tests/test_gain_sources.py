"""The naive absolute-improvement weighting ("naive_gain") and where the gain is measured
(gain.source = "train" | "global"), worked out by hand; the client is fed a TrainOutcome as the
trainer would return it (no model)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.config import RunConfig, config_from_dict
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.data.partition import ClientData
from secure_fgrpo.federation.client import Client
from secure_fgrpo.federation.local import TrainOutcome
from secure_fgrpo.gain import (
    GainConfig,
    GainState,
    gain_signal,
    relative_gain,
    round_gain,
    uses_rewards,
    weight,
)
from secure_fgrpo.grpo.trainer import RoundResult
from secure_fgrpo.tasks.base import Problem


def test_naive_gain_is_the_raw_improvement_and_favours_the_large_scale() -> None:
    """The same relative history on a 0/1 and a 0/100 scale: FGRPO's z-score gains agree, the
    naive raw gains differ by the scale (the 0/100 one saturates the clip G)."""
    cfg = GainConfig(beta=0.5, clip=2.0, tau=1.0, alpha=0.5)
    small = GainState(baseline=0.4, deviation=0.2, rounds=1)
    big = GainState(baseline=40.0, deviation=20.0, rounds=1)
    g_small, s2 = round_gain("naive_gain", small, 0.5, 0.3, 0.0, cfg)
    g_big, _ = round_gain("naive_gain", big, 50.0, 30.0, 0.0, cfg)
    assert g_small == pytest.approx(0.1, abs=1e-12)  # 0.5 - 0.4, no division
    assert g_big == 2.0  # 50 - 40 = 10, clipped at G
    assert s2.baseline == pytest.approx(0.45) and s2.deviation == pytest.approx(0.15)  # same history as FGRPO
    z_small, _ = round_gain("fgrpo", small, 0.5, 0.3, 0.0, cfg)
    z_big, _ = round_gain("fgrpo", big, 50.0, 30.0, 0.0, cfg)
    assert z_small == pytest.approx(0.5, rel=1e-5) and z_big == pytest.approx(0.5, rel=1e-5)  # 0.1 / 0.2
    # e = n^α·exp(g/τ): 16 groups -> 4·e^0.1 vs 4·e^2, a 6.0x ratio FGRPO would not have.
    assert weight("naive_gain", 16, g_small, cfg) == pytest.approx(4 * math.exp(0.1), rel=1e-12)
    assert weight("naive_gain", 16, g_big, cfg) == pytest.approx(4 * math.exp(2.0), rel=1e-12)
    assert uses_rewards("naive_gain") and uses_rewards("fgrpo") and not uses_rewards("fedavg")


def test_naive_gain_falls_with_the_reward() -> None:
    g, _ = relative_gain(GainState(baseline=0.6, deviation=0.05, rounds=1), 0.45, 0.0, GainConfig(), normalise=False)
    assert g == pytest.approx(-0.15, abs=1e-12)


def test_global_source_reads_the_incoming_global_accuracy() -> None:
    cfg = GainConfig(source="global", beta=0.5, clip=5.0)
    # First round: r = p = 0.36, spread sqrt(0.36 * 0.64) = 0.48; the training reward is ignored.
    assert gain_signal(cfg, 7.0, 3.0, 0.36) == (0.36, pytest.approx(0.48, abs=1e-12))
    g, s = round_gain("fgrpo", GainState(), 7.0, 3.0, 0.36, cfg)
    assert g == 0.0 and s.baseline == 0.36 and s.deviation == pytest.approx(0.48)
    # Second round: the global now scores 0.6 on this client's held-out split: g = 0.24 / 0.48.
    g, s = round_gain("fgrpo", s, 0.0, 0.0, 0.6, cfg)
    assert g == pytest.approx(0.5, rel=1e-5)
    assert s.baseline == pytest.approx(0.48) and s.deviation == pytest.approx(0.36)
    # The train source (default) reads the round's mean reward and its spread instead.
    assert gain_signal(GainConfig(), 7.0, 3.0, 0.36) == (7.0, 3.0)


def _run(**over: object) -> RunConfig:
    return config_from_dict(small_run(**{"gain.beta": 0.5, "gain.tau": 0.5, "gain.alpha": 0.5, **over}))


def _outcome(reward: float, accuracy: float, groups: int = 4) -> TrainOutcome:
    res = RoundResult(mean_reward=reward, reward_std=0.1, groups=groups, steps=[{"zero_std_frac": 0.0}])
    return TrainOutcome("a", np.array([0.1, 0.2], np.float32), res, eval_accuracy=accuracy, seconds=1.0)


def _client(run: RunConfig, root: Path) -> Client:
    train = [Problem(f"p{i}", "1", "vitals") for i in range(40)]
    return Client(run.clients[0], ClientData("a", {"vitals": 1.0}, train, []), root, run)


def test_client_weighs_by_the_global_source(tmp_path: Path) -> None:
    """Round 2's training reward falls but the incoming global improved on the client's split:
    with gain.source = "global" the weight rises (g = (0.75 - 0.5) / 0.5 = 0.5, e = 2·e^1)."""
    client = _client(_run(**{"gain.source": "global"}), tmp_path / "global")
    client.prepare_input(1, _outcome(reward=0.8, accuracy=0.5))
    p = client.prepare_input(2, _outcome(reward=0.2, accuracy=0.75))
    assert p.gain == pytest.approx(0.5, rel=1e-5) and p.weight == pytest.approx(2 * math.exp(1.0), rel=1e-5)
    train = _client(_run(), tmp_path / "train")
    train.prepare_input(1, _outcome(reward=0.8, accuracy=0.5))
    assert train.prepare_input(2, _outcome(reward=0.2, accuracy=0.75)).gain < 0  # the reward fell


def test_client_naive_gain_weight(tmp_path: Path) -> None:
    client = _client(_run(**{"federation.strategy": "naive_gain"}), tmp_path)
    client.prepare_input(1, _outcome(reward=0.4, accuracy=0.5))
    p = client.prepare_input(2, _outcome(reward=0.7, accuracy=0.5))  # raw gain 0.3, τ = 0.5
    assert p.gain == pytest.approx(0.3, abs=1e-12) and p.weight == pytest.approx(2 * math.exp(0.6), rel=1e-12)
    assert p.vector[-1] == pytest.approx(p.weight)


@pytest.mark.parametrize(("over", "key"), [
    ({"gain.source": "eval"}, "gain.source"),
    ({"federation.strategy": "median"}, "federation.strategy"),
    ({"gain.source": "global", "privacy.example_level": {"epsilon": 8.0}}, "gain.source"),
])
def test_bad_gain_settings_are_refused_naming_the_key(over: dict, key: str) -> None:
    with pytest.raises((ConfigError, ValueError), match=key.replace(".", r"\.")):
        _run(**over)
