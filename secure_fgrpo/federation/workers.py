"""Client-training worker processes that end with the process that started them.

A ``kill -9`` of the CLI gives its pool no chance to shut down; each spawned worker (0.7-0.9 GB)
would live on as an orphan. Every worker therefore asks Linux to kill it when its parent dies
(PR_SET_PDEATHSIG) and, as well (other systems, or a parent that died before the request),
watches its parent's pid from a daemon thread and exits when it changes."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: runs first in every worker."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl in this libc: the thread below still watches
            log.debug("prctl(PR_SET_PDEATHSIG) unavailable")
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(POLL_SECONDS)
        os._exit(1)  # no cleanup to do: the parent's run folder is resumed from its last completed round

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A spawn-context pool whose workers never outlive this process."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
