"""`secure-fgrpo audit` on a real run made WITH client-level DP (distributed Gaussian shares,
ε = 8, δ = 1e-5, masked backend) and example-level DP-SGD: the report gives the ε spent per
round from server/metrics.jsonl, the empirical ε of the real mechanism below it, the control
without noise far above it, the example-level ε as claimed by the config (equal to what each
client logged, which the test reads because it plays every party; the auditor never does),
and a high flag once the logged ε is made smaller than what the mechanism delivers.

The same on a masked run with Skellam integer noise: the audit runs it (no "not audited"
warning), below the logged ε, and states the calibration it audited next to the run's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.audit.runner import audit_run
from secure_fgrpo.cli import main
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import to_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.report import save_run_config


@pytest.fixture(scope="module")
def dp_run(quick_model_dir, tmp_path_factory) -> Path:
    raw = small_run(**{"secure_sum.backend": "masked",
                       "privacy.client_level": {"epsilon": 8, "delta": 1e-5, "mechanism": "distributed"},
                       "privacy.example_level": {"epsilon": 8, "delta": 1e-5}})
    cfg = config_from_dict(raw)
    run = tmp_path_factory.mktemp("dp") / "run"
    save_run_config(run, to_dict(cfg))
    Federation(cfg, run).run()
    return run


@pytest.fixture(scope="module")
def report(dp_run: Path) -> tuple[int, dict]:
    rc = main(["audit", str(dp_run), "--strict", "--no-attacks"])
    return rc, json.loads((dp_run / "audit" / "report.json").read_text())


@pytest.fixture(scope="module")
def skellam_run(quick_model_dir, tmp_path_factory) -> Path:
    raw = small_run(**{"secure_sum.backend": "masked",
                       "privacy.client_level": {"epsilon": 8, "delta": 1e-5, "mechanism": "skellam"}})
    cfg = config_from_dict(raw)
    run = tmp_path_factory.mktemp("skellam") / "run"
    save_run_config(run, to_dict(cfg))
    Federation(cfg, run).run()
    return run


def _metrics(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_report_gives_epsilon_per_round_and_the_empirical_bound_below_it(dp_run: Path, report) -> None:
    rc, rep = report
    assert rc == 0 and rep["summary"]["high_flags"] == 0 and rep["summary"]["checks_failed"] == []
    dp = rep["dp"]
    logged = _metrics(dp_run / "server" / "metrics.jsonl")
    assert [(x["round"], x["dp_client_epsilon"]) for x in dp["epsilon_per_round"]] == [
        (r["round"], r["dp_client_epsilon"]) for r in logged] and len(logged) == 2
    assert logged[0]["dp_client_epsilon"] < logged[1]["dp_client_epsilon"] == pytest.approx(8.0, rel=1e-3)
    assert dp["logged_epsilon"] == dp["reference_epsilon"] == logged[-1]["dp_client_epsilon"]
    assert dp["planned_epsilon"] == pytest.approx(dp["logged_epsilon"], rel=1e-9)
    cl = dp["client_level"]
    assert cl["mechanism"] == "distributed" and cl["backend"] == "masked" and cl["rounds"] == 2
    assert cl["noise_multiplier"] == pytest.approx(logged[-1]["dp_client_noise_multiplier"])
    assert dp["consistent"] is True and dp["empirical_epsilon_lower"] <= dp["logged_epsilon"]
    assert 2.0 < dp["empirical_epsilon"] < 10.0  # informative, not vacuous (expected ≈ 5.6)
    assert cl["statistics"]["message"]["epsilon_lower"] < 1.0  # masked messages: chance
    control = dp["control"]["statistics"]["sum"]
    assert control["auc"] == 1.0 and float(control["epsilon_lower"]) > 50  # same audit, no noise


def test_example_level_epsilon_is_claimed_and_matches_the_clients_own_logs(dp_run: Path, report) -> None:
    _, rep = report
    ex = rep["dp"]["example_level"]
    assert ex["status"] == "claimed by the config, not observable by the server"
    assert ex["inputs"]["rounds_done"] == 2 and ex["inputs"]["grpo_steps_per_round"] == 2
    for name in ("a", "b", "c"):  # each client logged its own spend (the auditor never reads this)
        own = _metrics(dp_run / "clients" / name / "metrics.jsonl")[-1]["dp_example_epsilon"]
        assert ex["epsilon_after_rounds_done"] == pytest.approx(own, rel=1e-9)
    page = (dp_run / "audit" / "report.html").read_text()
    assert "claimed by the config, not observable by the server" in page
    assert "ClientNoise.privatize" in page and "control: same audit without noise" in page


def test_an_under_reported_epsilon_is_flagged(dp_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(dp_run / "server", run / "server")
    shutil.copy(dp_run / "config.json", run / "config.json")
    rows = _metrics(run / "server" / "metrics.jsonl")
    for r in rows:
        r["dp_client_epsilon"] = r["dp_client_epsilon"] / 10  # the log claims 10x less than spent
    (run / "server" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = audit_run(run, attacks=False, seed=1)
    codes = {f["code"]: f["severity"] for f in rep["flags"]}
    assert codes == {"epsilon-under-reported": "high", "dp-epsilon-log-mismatch": "warn"}
    assert rep["dp"]["consistent"] is False and rep["summary"]["high_flags"] == 1


def test_a_skellam_run_is_audited_below_its_logged_epsilon(skellam_run: Path, capsys) -> None:
    rc = main(["audit", str(skellam_run), "--strict", "--no-attacks"])
    console = capsys.readouterr().out
    rep = json.loads((skellam_run / "audit" / "report.json").read_text())
    assert rc == 0 and rep["summary"]["high_flags"] == 0 and rep["summary"]["warnings"] == 0
    assert not any(f["code"].startswith("dp-") for f in rep["flags"])  # no "not audited" warning
    dp, logged = rep["dp"], _metrics(skellam_run / "server" / "metrics.jsonl")
    assert dp["client_level"]["mechanism"] == "skellam" and dp["client_level"]["backend"] == "masked"
    assert dp["logged_epsilon"] == dp["reference_epsilon"] == logged[-1]["dp_client_epsilon"] == pytest.approx(8.0)
    assert dp["planned_epsilon"] == pytest.approx(dp["logged_epsilon"], rel=1e-9)  # the plan at the run's dim
    assert dp["consistent"] is True and dp["empirical_epsilon_lower"] <= dp["logged_epsilon"]
    assert 2.0 < dp["empirical_epsilon"] < 10.0  # informative, not vacuous (expected ≈ 5.6)
    assert dp["client_level"]["statistics"]["message"]["epsilon_lower"] < 1.0  # masked words: chance
    # The calibration audited, next to the run's: the run's length read from the server's own
    # masked inputs (the test checks it against the layout the clients' runner wrote).
    layout = json.loads((skellam_run / "layout.json").read_text())
    sk = dp["skellam"]
    assert sk["run_dim"] == sum(int(np.prod(s)) for s in layout["shapes"]) + 1 and sk["audit_dim"] == 2049
    assert sk["run"]["sigma"] == logged[-1]["dp_client_sigma"] and sk["run"]["mu"] == logged[-1]["dp_client_skellam_mu"]
    assert sk["sigma_ratio"] <= 1.0 and sk["sigma_ratio"] == pytest.approx(1.0, rel=1e-9)
    assert sk["audited"]["epsilon"] == pytest.approx(dp["logged_epsilon"], rel=1e-9)
    control = dp["control"]["statistics"]["sum"]
    assert control["auc"] == 1.0 and float(control["epsilon_lower"]) > 50  # same audit, no noise
    assert "Skellam calibration" in console and "consistent" in console and "not audited" not in console
