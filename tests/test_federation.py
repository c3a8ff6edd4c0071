"""End-to-end federation on the tiny model: the server's new global adapter is exactly the
weighted average of client deltas (recomputed independently here), and a killed run resumes
from its last completed round to the same result as an uninterrupted one."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run
from peft import PeftModel

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.local import run_training
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.model.load import load_base


def _gain_by_hand(history: list[tuple[float, float]], beta: float, eps: float, clip: float) -> float:
    """The z-score gain of the last round, written out from DESIGN.md (not the project's helper):
    b^1 = r^1, s^1 = spread^1; g^t = clip((r^t - b^{t-1}) / (s^{t-1} + eps)); then
    b^t = beta b^{t-1} + (1 - beta) r^t, s^t = beta s^{t-1} + (1 - beta) |r^t - b^{t-1}|."""
    (b, s), gain = history[0], 0.0
    for r, _ in history[1:]:
        gain = max(-clip, min(clip, (r - b) / (s + eps)))
        b, s = beta * b + (1 - beta) * r, beta * s + (1 - beta) * abs(r - b)
    return gain


def test_global_is_weighted_average_of_client_deltas(quick_model_dir, tmp_path) -> None:
    """Expected values from the clients' rewards and deltas through the formulas written out here,
    with asymmetric constants (beta = 0.8, eps = 0.05, tau = 0.25, alpha = 0.25, server lr = 0.5)
    and three rounds, so that the EMA's beta enters (round 3's gain reads round 2's baseline)."""
    beta, eps, clip, tau, alpha, lr, c_max = 0.8, 0.05, 2.5, 0.25, 0.25, 0.5, 0.05
    cfg = config_from_dict(small_run(**{"federation.delta_clip": c_max,  # small: clipping is exercised
                                        "federation.rounds": 3, "server.lr": lr, "gain.beta": beta,
                                        "gain.eps": eps, "gain.clip": clip, "gain.tau": tau,
                                        "gain.alpha": alpha}))
    fed = Federation(cfg, tmp_path / "run")
    g = fed.global_model.state.vector.astype(np.float64)
    history: dict[str, list[tuple[float, float]]] = {c.name: [] for c in cfg.clients}
    gains_seen: list[float] = []
    for r in (1, 2, 3):
        outs = [run_training(job) for job in fed._jobs(r, fed.server.participants(r))]
        num, den, mine = np.zeros_like(g), 0.0, {}
        for out in outs:
            history[out.client].append((out.result.mean_reward, out.result.reward_std))
            gain = _gain_by_hand(history[out.client], beta, eps, clip)
            e = out.result.groups ** alpha * math.exp(gain / tau)  # FGRPO counts the groups trained on
            d = out.delta.astype(np.float64)
            norm = math.sqrt(float(np.sum(d * d)))
            assert norm > c_max  # the clip is active
            num += e * d * (c_max / norm)
            den += e
            mine[out.client] = (gain, e, out.result.groups)
        g = g + lr * num / den
        fed.run(rounds=1)
        assert np.allclose(fed.global_model.state.vector, g, rtol=0, atol=1e-6), f"round {r}"
        g = fed.global_model.state.vector.astype(np.float64)  # the server keeps float32
        for name, (gain, e, groups) in mine.items():  # what each client recorded it sent
            row = json.loads((tmp_path / "run" / "clients" / name / "metrics.jsonl").read_text().splitlines()[-1])
            assert row["round"] == r and row["count"] == row["groups"] == groups
            assert row["gain"] == pytest.approx(gain, abs=1e-9) and row["weight"] == pytest.approx(e, rel=1e-9)
        gains_seen += [abs(gain) for gain, _, _ in mine.values()]
    assert max(gains_seen) > 0.1  # the gain really entered the weights
    rows = fed.server.metrics.rows()
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert [r["round"] for r in fed.global_metrics.rows()] == [0, 1, 2, 3]
    # Nothing per-client in the server's metrics: only aggregates.
    for row in rows:
        assert not {"gain", "weight", "mean_reward", "groups", "count"} & set(row)
    # The exported adapter loads with peft and carries the global vector.
    base, _ = load_base(str(quick_model_dir))
    PeftModel.from_pretrained(base, tmp_path / "run" / "server" / "global_adapter")


_CHILD = """
import json, sys
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
Federation(config_from_dict(json.loads(sys.argv[1])), sys.argv[2]).run()
"""


def _start(raw: dict, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(raw), str(run_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _completed(run_dir: Path) -> int:
    p = run_dir / "server" / "state.json"
    return json.loads(p.read_text())["last_completed_round"] if p.exists() else 0


def test_resume_after_kill_matches_uninterrupted_run(quick_model_dir, tmp_path) -> None:
    raw = small_run(**{"federation.rounds": 3})
    ref = Federation(config_from_dict(raw), tmp_path / "ref")
    ref.run()
    run_dir = tmp_path / "killed"
    proc = _start(raw, run_dir)
    deadline = time.time() + 240
    while _completed(run_dir) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)  # mid-way through round 2
    proc.wait()
    assert _completed(run_dir) < 3
    resumed = Federation(config_from_dict(raw), run_dir)
    assert resumed.global_model.state.round == _completed(run_dir)
    resumed.run()
    assert np.array_equal(resumed.global_model.state.vector, ref.global_model.state.vector)
    assert [r["round"] for r in resumed.server.metrics.rows()] == [1, 2, 3]
    assert [r["round"] for r in resumed.global_metrics.rows()] == [0, 1, 2, 3]
    entries = [json.loads(line) for line in (run_dir / "server" / "transcript.jsonl").read_text().splitlines()]
    per_round = {}
    for e in entries:
        per_round.setdefault(e["round"], []).append(e["sender"])
    assert {r: sorted(s) for r, s in per_round.items()} == {r: ["a", "b", "c"] for r in (1, 2, 3)}
    for name in ("a", "b", "c"):
        rows = [json.loads(line) for line in (run_dir / "clients" / name / "metrics.jsonl").read_text().splitlines()]
        assert [r["round"] for r in rows] == [1, 2, 3]
