"""The audit's attack simulation has the run's own shape, or says loudly where it does not; the
membership section explains a "chance" verdict next to a non-zero empirical ε (issue 15)."""

from __future__ import annotations

import pytest

from secure_fgrpo.audit.runner import audit_run
from secure_fgrpo.audit.simulate import MAX_SIM, MIN_MESSAGES, sim_shape, simulate_federation


def test_sim_shape_follows_the_run_and_names_each_difference() -> None:
    same = sim_shape(8, 3, 98_305)
    assert same.simulated == {"clients": 8, "rounds": 3, "dim": 98_305} and same.differs == []
    short = sim_shape(4, 2, 98_305)  # the run: 4 clients, 2 rounds, 98k coordinates
    assert short.simulated == {"clients": 4, "rounds": MIN_MESSAGES // 4, "dim": 98_305}
    assert len(short.differs) == 1 and short.differs[0].startswith("rounds: simulated 6, the run 2")
    big = sim_shape(40, 30, 5_000_000)
    assert big.simulated == MAX_SIM and len(big.differs) == 3 and "capped at 131,073" in big.differs[2]
    unknown = sim_shape(3, 1, None)
    assert unknown.simulated["dim"] == 1025 and any("not visible" in d for d in unknown.differs)


@pytest.mark.parametrize("backend", ["plaintext", "masked"])
def test_report_states_the_shape_and_the_chance_level(tmp_path, backend) -> None:
    run = tmp_path / "run"
    run.mkdir()
    simulate_federation(run, backend, {}, clients=4, rounds=2, dim=2049, seed=3)  # stands in for a run
    rep = audit_run(run, tmp_path / "audit", seed=1)
    h = rep["attacks"]["harness"]
    assert (h["clients"], h["rounds"], h["dim"]) == (4, 6, 2049)
    assert h["run_shape"] == {"clients": 4, "rounds": 2, "dim": 2049}
    assert len(h["shape_differs"]) == 1 and "rounds" in h["shape_differs"][0]
    html = (tmp_path / "audit" / "report.html").read_text()
    assert "does not have this run&#x27;s shape" in html or "does not have this run's shape" in html
    assert "with <i>nothing planted</i>" in html
    mem = next(r for r in rep["attacks"]["results"] if r["name"] == "membership (per message)")
    d = mem["details"]
    assert d["messages"] == 24 and abs(d["null_auc"] - 0.5) < 0.3  # the chance reference is at chance
    if backend == "plaintext":  # teeth: planted canaries separate, far beyond the chance reference
        assert mem["verdict"] == "succeeds" and mem["value"] == 1.0
    else:
        assert mem["verdict"] == "chance"
