"""benchmarks/sim_engine.py's engine side runs a real round on Flower's Simulation Engine:
virtual SuperNodes named by partition id, the party's local GRPO step, and the masked secure
sum held in each node's Context.state; the server recovers the sum of every sampled client.
Needs ray (``pip install -e '.[sim]'``); skipped without it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Flower's Simulation Engine needs ray: pip install -e '.[sim]'")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


@pytest.mark.timeout(900)
def test_a_sampled_masked_round_runs_on_the_simulation_engine(tmp_path: Path) -> None:
    from sim_engine import engine_worker

    res = engine_worker(12, 4, 1, True, str(tmp_path))
    (row,) = res["rounds"]
    assert row["sampled"] == 4 and row["contributors"] == 4  # every sampled node's input is in the sum
    assert len(row["train_cpu_s"]) == 4 and min(row["train_cpu_s"]) > 0  # each trained in its ClientApp
    up = row["bytes"]["masked_input"][1]
    assert up >= 4 * 4 * row["dim"]  # four masked vectors of 4-byte words reached the server
    assert res["peak_tree_rss_gib"] > 0
