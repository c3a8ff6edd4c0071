"""What a client sends, [e·clip(Δ), e], worked out by hand, and what its count n_i is
(gain.count): the data set size for FedAvg, the groups trained on this round for FGRPO, capped
at a public bound. No model: the client is fed a TrainOutcome as the trainer would return it."""

from __future__ import annotations

import logging
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
from secure_fgrpo.grpo.trainer import RoundResult
from secure_fgrpo.tasks.base import Problem

# β = 0.8, ε = 0.05, G = 2.5, τ = 0.25, α = 0.25, C = 2.5; small_run: data.train_size = 40,
# grpo.steps = 2, grpo.prompts_per_step = 4 (at most 8 groups a round).
ASYM = {"gain.beta": 0.8, "gain.eps": 0.05, "gain.clip": 2.5, "gain.tau": 0.25, "gain.alpha": 0.25,
        "federation.delta_clip": 2.5}


def _run(**over: object) -> RunConfig:
    return config_from_dict(small_run(**{**ASYM, **over}))


def _client(run: RunConfig, root: Path, records: int = 40) -> Client:
    train = [Problem(f"p{i}", "1", "vitals") for i in range(records)]
    return Client(run.clients[0], ClientData("a", {"vitals": 1.0}, train, []), root, run)


def _outcome(delta: list[float], reward: float, spread: float, groups: int) -> TrainOutcome:
    res = RoundResult(mean_reward=reward, reward_std=spread, groups=groups, steps=[{"zero_std_frac": 0.25}])
    return TrainOutcome("a", np.array(delta, np.float32), res, eval_accuracy=0.5, seconds=1.0)


def test_fgrpo_client_vector_by_hand(tmp_path: Path) -> None:
    client = _client(_run(), tmp_path)
    # Round 1: g = 0, n = 5 groups: e = 5^0.25; Δ = (3, 4), |Δ| = 5 > C: (1.5, 2.0)
    p = client.prepare_input(1, _outcome([3.0, 4.0], 0.4, 0.2, groups=5))
    e1 = 5 ** 0.25
    assert np.allclose(p.vector, [1.5 * e1, 2.0 * e1, e1], rtol=1e-12, atol=0)
    # Round 2: b = 0.4, s = 0.2 (round 1's spread), r = 0.7: g = 0.3 / 0.25 = 1.2;
    # n = 8 groups: e = 8^0.25 * exp(1.2 / 0.25) = 8^0.25 * e^4.8; Δ = (0.3, -0.4) is inside C.
    p = client.prepare_input(2, _outcome([0.3, -0.4], 0.7, 0.9, groups=8))
    e2 = 8 ** 0.25 * math.exp(4.8)
    assert p.gain == pytest.approx(1.2, abs=1e-12) and p.weight == pytest.approx(e2, rel=1e-12)
    assert np.allclose(p.vector, [0.3 * e2, -0.4 * e2, e2], rtol=1e-6, atol=0)  # Δ arrives as float32
    rows = client.metrics.rows()
    assert [(r["groups"], r["count"], r["clipped"]) for r in rows] == [(5, 5, True), (8, 8, False)]
    assert rows[0]["delta_norm"] == pytest.approx(5.0) and rows[1]["weight"] == pytest.approx(e2, rel=1e-12)
    assert client.gain_state.baseline == pytest.approx(0.8 * 0.4 + 0.2 * 0.7, abs=1e-12)  # 0.46


def test_fedavg_counts_the_data_set_not_the_round(tmp_path: Path) -> None:
    run = _run(**{"federation.strategy": "fedavg"})
    assert run.max_count == 40 and run.weight_bound == 40.0  # data.train_size
    client = _client(run, tmp_path)
    for r, groups in ((1, 3), (2, 0)):  # a round without an informative group still weighs 40
        p = client.prepare_input(r, _outcome([0.1, 0.2], 0.5, 0.1, groups=groups))
        assert p.weight == 40.0 and p.vector[-1] == 40.0
    assert [(r["groups"], r["count"]) for r in client.metrics.rows()] == [(3, 40), (0, 40)]


def test_a_larger_data_set_is_capped_at_the_public_max_count(tmp_path: Path, caplog) -> None:
    run = _run(**{"federation.strategy": "fedavg"})
    with caplog.at_level(logging.WARNING, logger="secure_fgrpo.federation.client"):
        client = _client(run, tmp_path / "default", records=55)
    assert "55 training records count as gain.max_count = 40" in caplog.text
    assert client.prepare_input(1, _outcome([0.1], 0.5, 0.1, groups=3)).weight == 40.0
    assert client.metrics.rows()[0]["count"] == 40
    # The count is capped before the weight, not the weight after: FGRPO at g = 0 weighs 40^0.25
    # (a cap on e alone, 40^0.25 * e^10, would let 55^0.25 through).
    fgrpo = _client(_run(**{"gain.count": "dataset"}), tmp_path / "fgrpo", records=55)
    assert fgrpo.prepare_input(1, _outcome([0.1], 0.5, 0.1, groups=3)).weight == pytest.approx(40 ** 0.25, rel=1e-12)
    run = _run(**{"federation.strategy": "fedavg", "gain.max_count": 50})
    assert run.max_count == 50 and run.weight_bound == 50.0
    assert _client(run, tmp_path / "cap50", records=55).prepare_input(
        1, _outcome([0.1], 0.5, 0.1, groups=3)).weight == 50.0
    assert _client(run, tmp_path / "small", records=12).prepare_input(
        1, _outcome([0.1], 0.5, 0.1, groups=3)).weight == 12.0


def test_count_choice_for_each_strategy(tmp_path: Path) -> None:
    # FGRPO on the data set: e = 40^0.25 * exp(0) at round 1; bound 40^0.25 * exp(2.5 / 0.25).
    run = _run(**{"gain.count": "dataset"})
    assert run.max_count == 40 and run.weight_bound == pytest.approx(40 ** 0.25 * math.exp(10.0), rel=1e-12)
    p = _client(run, tmp_path / "f").prepare_input(1, _outcome([0.1], 0.5, 0.1, groups=3))
    assert p.weight == pytest.approx(40 ** 0.25, rel=1e-12)
    # FedAvg on the round's groups (the per-round count kept as an option): n = 3, at most 2 x 4.
    run = _run(**{"federation.strategy": "fedavg", "gain.count": "informative_groups"})
    assert run.max_count == 8 and run.weight_bound == 8.0
    assert _client(run, tmp_path / "g").prepare_input(1, _outcome([0.1], 0.5, 0.1, groups=3)).weight == 3.0
    # FGRPO's default ("auto") is the groups: bound 8^0.25 * e^10.
    assert _run().max_count == 8
    assert _run().weight_bound == pytest.approx(8 ** 0.25 * math.exp(10.0), rel=1e-12)


@pytest.mark.parametrize(("over", "key"), [
    ({"gain.count": "examples"}, "gain.count"),
    ({"gain.max_count": 0}, "gain.max_count"),
    ({"gain.count": "informative_groups", "privacy.example_level": {"epsilon": 8.0}}, "gain.count"),
])
def test_bad_count_settings_are_refused_naming_the_key(over: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _run(**over)


def test_under_example_dp_the_count_is_the_public_expected_batch(tmp_path: Path) -> None:
    # q = oversample / N = 6 / 40 (privacy/config.py's default); the trainer reports
    # round(steps x q x N) = 12 as the groups, and FedAvg weighs by it, not by the 40 records.
    run = _run(**{"federation.strategy": "fedavg", "privacy.example_level": {"epsilon": 8.0}})
    assert run.max_count == 2 * 6
    p = _client(run, tmp_path).prepare_input(1, _outcome([0.1], 0.5, 0.1, groups=12))
    assert p.weight == 12.0


def _weight_sums(run: RunConfig, root: Path, groups: dict[str, list[int]]) -> list[float]:
    """Σe_i as the server learns it: round 1 over {a, b, c}, round 2 over {a, b} (c dropped)."""
    sizes = {"a": 30, "b": 40, "c": 17}
    clients = {n: _client(run, root / n, records=k) for n, k in sizes.items()}
    sums = []
    for r, members in ((1, "abc"), (2, "ab")):
        sums.append(sum(clients[n].prepare_input(r, _outcome([0.1], 0.5, 0.1, groups[n][r - 1])).weight
                        for n in members))
    return sums


def test_differencing_weight_sums_reveals_a_static_count(tmp_path: Path) -> None:
    """threat_model/residual_risks.md item 4: with FedAvg's data-set count every weight is the
    same each round, so two sums over participant sets differing by c give c's data set size."""
    groups = {"a": [3, 7], "b": [5, 2], "c": [6, 6]}
    s1, s2 = _weight_sums(_run(**{"federation.strategy": "fedavg"}), tmp_path / "dataset", groups)
    assert s1 - s2 == 17  # n_c exactly
    s1, s2 = _weight_sums(_run(**{"federation.strategy": "fedavg", "gain.count": "informative_groups"}),
                          tmp_path / "groups", groups)
    assert s1 - s2 == (3 + 5 + 6) - (7 + 2)  # 5: neither c's data set nor its round count (6)
