"""DP inside the federation: ε written every round where it belongs, the run stopping before a
budget would be exceeded, and client-level noise passing through the secure-sum backends (the
widened public box, the weight offset removed from the sum)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.privacy.accountant import Budget


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_example_level_epsilon_grows_per_round_and_the_run_stops_at_its_budget(quick_model_dir, tmp_path) -> None:
    q, steps = 6 / 40, 2  # small_run: grpo.oversample / data.train_size, grpo.steps
    # FGRPO's reward moments ride on each step at k = 5 times the noise: z_eff = z / sqrt(1 + 2/k²)
    spend = Budget(1.0 / (1 + 2 / 5**2) ** 0.5, q, steps, 1e-5, "rdp", None)
    limit = (spend.spent(2) + spend.spent(3)) / 2  # room for two rounds, not three
    raw = small_run(**{"federation.rounds": 3, "privacy.example_level": {"noise_multiplier": 1.0, "epsilon": limit}})
    summary = Federation(config_from_dict(raw), tmp_path / "run").run()
    assert "round 3 would exceed" in summary.stopped and "example-level" in summary.stopped
    assert [r["round"] for r in _rows(tmp_path / "run" / "server" / "metrics.jsonl")] == [1, 2]
    for name in "abc":
        rows = _rows(tmp_path / "run" / "clients" / name / "metrics.jsonl")
        eps = [r["dp_example_epsilon"] for r in rows]
        assert eps == pytest.approx([spend.spent(1), spend.spent(2)])
        assert eps[0] < eps[1] <= limit
    # The server's own log carries no example-level figure (it is each client's business).
    assert not any("dp_example_epsilon" in r for r in _rows(tmp_path / "run" / "server" / "metrics.jsonl"))


def test_client_level_epsilon_goes_to_the_server_log_and_stops_the_run(quick_model_dir, tmp_path) -> None:
    spend = Budget(2.0, 1.0, 1, 1e-5, "rdp", None)  # 3 of 3 clients per round: q = 1
    limit = (spend.spent(1) + spend.spent(2)) / 2
    raw = small_run(**{"federation.rounds": 2, "federation.strategy": "uniform",
                       "privacy.client_level": {"noise_multiplier": 2.0, "epsilon": limit, "mechanism": "local"}})
    summary = Federation(config_from_dict(raw), tmp_path / "run").run()
    assert "client-level budget" in summary.stopped
    (row,) = _rows(tmp_path / "run" / "server" / "metrics.jsonl")
    assert row["dp_client_epsilon"] == pytest.approx(spend.spent(1))
    assert row["dp_client_sigma"] == pytest.approx(2.0 * 1.0 * (4.0 ** 2 + 1) ** 0.5)  # z·e_max·sqrt(C²+1)
    assert row["sum_of_weights"] >= row["dp_client_sigma"]  # the noised denominator is floored at σ


@pytest.fixture(scope="module")
def plain_round(quick_model_dir, tmp_path_factory) -> tuple[np.ndarray, float]:
    fed = Federation(config_from_dict(small_run(**{"federation.rounds": 1})), tmp_path_factory.mktemp("p") / "run")
    fed.run()
    return fed.global_model.state.vector.copy(), fed.global_metrics.rows()[-1]["sum_of_weights"]


@pytest.mark.parametrize("backend,options", [("ckks", {"reveal": "server-learns-sum"}), ("masked", {})])
def test_distributed_noise_passes_through_secure_backends(plain_round, tmp_path, backend: str, options: dict) -> None:
    """Tiny noise: the secure, noised round must land on the plaintext round's global adapter, so
    the backends accept the widened public box and decode the shifted weight coordinate (the
    offset's removal itself is checked statistically in test_privacy_noise.py)."""
    raw = small_run(**{"federation.rounds": 1, "secure_sum.backend": backend, "secure_sum.options": options,
                       "privacy.client_level": {"noise_multiplier": 1e-9, "mechanism": "distributed"}})
    fed = Federation(config_from_dict(raw), tmp_path / "run")
    fed.run()
    vector, weights = plain_round
    row = _rows(tmp_path / "run" / "server" / "metrics.jsonl")[-1]
    assert row["contributors"] == 3 and not row["aborted"]
    assert row["sum_of_weights"] == pytest.approx(weights, rel=1e-4)
    assert np.allclose(fed.global_model.state.vector, vector, rtol=0, atol=1e-4 * np.abs(vector).max())
