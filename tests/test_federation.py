"""End-to-end federation on the tiny model: the server's new global adapter is exactly the
weighted average of client deltas (recomputed independently here), and a killed run resumes
from its last completed round to the same result as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from peft import PeftModel

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.client import clip_l2
from secure_fgrpo.federation.local import run_training
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.gain import GainState, relative_gain, weight
from secure_fgrpo.model.load import load_base

from conftest import small_run


def test_global_is_weighted_average_of_client_deltas(quick_model_dir, tmp_path) -> None:
    cfg = config_from_dict(small_run(**{"federation.delta_clip": 0.05}))  # small: clipping is exercised
    fed = Federation(cfg, tmp_path / "run")
    g = fed.global_model.state.vector.copy()
    states = {c.name: GainState() for c in cfg.clients}
    for r in (1, 2):
        outs = [run_training(job) for job in fed._jobs(r, fed.server.participants(r))]
        num, den = np.zeros_like(g, dtype=np.float64), 0.0
        for out in outs:
            gain, states[out.client] = relative_gain(states[out.client], out.result.mean_reward,
                                                     out.result.reward_std, cfg.gain)
            e = weight("fgrpo", out.result.examples, gain, cfg.gain)
            d, norm = clip_l2(out.delta.astype(np.float64), cfg.federation.delta_clip)
            assert norm > cfg.federation.delta_clip  # the clip was active
            num += e * d
            den += e
        g = (g + num / den).astype(np.float32)
        fed.run(rounds=1)
        assert np.allclose(fed.global_model.state.vector, g, atol=1e-6), f"round {r}"
    rows = fed.server.metrics.rows()
    assert [r["round"] for r in rows] == [1, 2]
    assert [r["round"] for r in fed.global_metrics.rows()] == [0, 1, 2]
    # Nothing per-client in the server's metrics: only aggregates.
    for row in rows:
        assert not {"gain", "weight", "mean_reward", "examples"} & set(row)
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
