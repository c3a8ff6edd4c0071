"""Pool workers die with the process that started them (kill -9 gives the pool no chance to
shut down). The teeth: a plain spawn pool's workers do outlive a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from secure_fgrpo.federation.workers import worker_pool

def pid(_):
    time.sleep(0.5)
    return os.getpid()

if __name__ == "__main__":
    pool = (worker_pool(2) if sys.argv[1] == "watched"
            else ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")))
    print(" ".join(str(p) for p in sorted(set(pool.map(pid, range(4))))), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _orphans_after_kill(tmp_path: Path, kind: str) -> list[int]:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    proc = subprocess.Popen([sys.executable, str(script), kind], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers and all(_alive(w) for w in workers)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    alive = [w for w in workers if _alive(w)]
    for w in alive:  # the teeth case leaves orphans we started: end them
        os.kill(w, signal.SIGKILL)
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_die_with_their_parent_and_plain_pool_workers_do_not(tmp_path) -> None:
    assert _orphans_after_kill(tmp_path, "watched") == []
    assert _orphans_after_kill(tmp_path, "plain") != []  # what the CLI used to leave behind
