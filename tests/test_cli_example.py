"""A user's own federation through the CLI, end to end (issue 15): the example in examples/
(own JSONL files) runs; kill -9 of the CLI leaves no worker behind; the rerun says where it
resumes and prints progress without a terminal; a state claiming a later round than configured,
a damaged checkpoint, a run whose every round aborted, and a data file the model cannot read
all stop with a non-zero exit and one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from conftest import QUICK_TABLE, small_run
from toml_out import dumps

from secure_fgrpo.cli import main
from secure_fgrpo.configio import set_dotted
from secure_fgrpo.report import accuracy_curves

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = {"model.embedded": dict(QUICK_TABLE), "model.lora": {"r": 4}, "grpo.steps": 1, "grpo.group_size": 4,
        "grpo.prompts_per_step": 4, "grpo.oversample": 6, "grpo.sampling": {"max_new_tokens": 6},
        "grpo.loss": {"max_completion_length": 6}, "eval.max_new_tokens": 6, "data.global_eval_size": 8}


def _copy_example(tmp_path: Path, **over: object) -> Path:
    """What a user does: copy examples/, edit the config (here: a tiny model and sizes)."""
    dst = tmp_path / "ex"
    shutil.copytree(EXAMPLES, dst)
    raw = tomllib.loads((dst / "hospitals.toml").read_text())
    for k, v in {**TINY, **over}.items():
        set_dotted(raw, k, v)
    (dst / "tiny.toml").write_text(dumps(raw))
    return dst / "tiny.toml"


def _children(pid: int) -> list[int]:
    """Pool workers (spawned interpreters) whose parent is ``pid``, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmd:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _completed(run: Path) -> int:
    p = run / "server" / "state.json"
    return json.loads(p.read_text())["last_completed_round"] if p.exists() else 0


def _one_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out, out
    return lines[0]


def test_example_federation_kill_resume_and_refusals(quick_model_dir, tmp_path, capsys) -> None:
    cfg = _copy_example(tmp_path, **{"federation.rounds": 2, "federation.workers": 2})
    run = tmp_path / "run"
    log = (tmp_path / "cli.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "secure_fgrpo.cli", "run", str(cfg), "--out", str(run)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 600
    workers: list[int] = []
    while time.time() < deadline and proc.poll() is None and not (_completed(run) >= 1 and workers):
        workers = _children(proc.pid)
        time.sleep(0.2)
    assert proc.poll() is None and workers, (tmp_path / "cli.log").read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)  # mid-way through round 2, workers busy or idle in the pool
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "pool workers outlived the killed CLI"
    before = (tmp_path / "cli.log").read_text()
    assert "building / loading the model" in before and "round 1/2 started" in before  # no terminal: plain lines
    assert "round 1: st-mary done" in before

    assert _completed(run) == 1
    assert main(["run", str(cfg), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "resuming from round 2 of 2" in out and "round 2/2 started" in out and "points" in out
    glob, per = accuracy_curves(run)
    assert sorted(glob) == [0, 1, 2]
    assert all(sorted(curve) == [0, 1, 2] for curve in per.values()) and len(per) == 3  # through the last round
    assert (run / "accuracy.png").stat().st_size > 0 and (run / "server" / "global_adapter").is_dir()

    state = run / "server" / "state.json"
    state.write_text(json.dumps({"last_completed_round": 5}))  # was: exit 0 without training
    assert main(["run", str(cfg), "--out", str(run)]) == 2
    assert "says round 5 completed, but federation.rounds = 2" in _one_line(capsys.readouterr().out)
    state.write_text(json.dumps({"last_completed_round": 2}))
    ckpt = run / "server" / "checkpoints" / "round-2.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # was: BadZipFile
    assert main(["run", str(cfg), "--out", str(run)]) == 2
    assert _one_line(capsys.readouterr().out).startswith(f"error: {ckpt}: damaged checkpoint")


def test_data_the_model_cannot_read_stops_before_training(quick_model_dir, tmp_path, capsys) -> None:
    cfg = _copy_example(tmp_path, **{"federation.rounds": 1, "federation.workers": 1})
    with (cfg.parent / "data" / "st-mary.jsonl").open("a") as fh:
        fh.write(json.dumps({"prompt": "How many mg in 2 g?=", "answer": "2000", "kind": "numeric"}) + "\n")
    run = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(run)]) == 2
    line = _one_line(capsys.readouterr().out)
    assert "clients.st-mary.data" in line and "st-mary.jsonl" in line and "'H'" in line
    assert not (run / "server" / "state.json").exists()


def test_every_round_aborted_is_an_error(quick_model_dir, tmp_path, capsys) -> None:
    raw = small_run(**{"federation.rounds": 1, "secure_sum.threshold": 1.0, "federation.dropout": 0.9})
    cfg = tmp_path / "c.toml"
    cfg.write_text(dumps(raw))
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 1  # was: exit 0, "+0.0 points"
    out = capsys.readouterr().out
    assert "every round (1) aborted" in _one_line(out) and "points" not in out
