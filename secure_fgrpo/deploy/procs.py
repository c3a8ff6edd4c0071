"""Processes started by the harness: each in its own session, stopped by its PID.

``stop`` signals the process group led by the PID it started (Flower's SuperLink and SuperNode
start helper processes of their own), waits, then kills what is left. Never by name.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port free on loopback right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill_now(self) -> None:
        """SIGKILL this process only (a machine that vanishes mid-round)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group this PID leads, wait up to ``grace`` s, then SIGKILL it."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            end = time.monotonic() + wait
            while time.monotonic() < end and self.alive():
                time.sleep(0.05)
            if not self.alive() and not _group_alive(self.pid):
                break
        if self.alive():
            self.popen.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class ProcGroup:
    """Every process one harness started; ``stop_all`` in a finally/finalizer."""

    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path, cwd: Path | None = None) -> Proc:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / f"{name}.log"
        with open(path, "ab") as fh:
            popen = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=cwd, start_new_session=True)
        proc = Proc(name, popen, path)
        self.procs.append(proc)
        log.info("started %s (pid %d)", name, proc.pid)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as err:
                log.warning("could not stop %s (pid %d): %s", proc.name, proc.pid, err)
