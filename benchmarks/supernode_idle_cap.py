"""Benchmark only, never for a deployment: ``flower-supernode`` with the sleeps of its main loop
capped at ``SFG_BENCH_IDLE_CAP`` seconds. flwr 1.41's SuperNode sleeps a hard-coded 3 s after
every pull that found no message (and 0.5 s between checks for a ClientApp's reply); no flag or
environment variable sets either. benchmarks/flower_round.py starts the SuperNodes through this
file to measure how much of a stage those sleeps cost.

    SFG_BENCH_IDLE_CAP=0.2 python benchmarks/supernode_idle_cap.py [flower-supernode arguments]
"""

from __future__ import annotations

import os
import time
from typing import Any

import flwr.supernode.start_client_internal as loop
from flwr.supernode.cli import flower_supernode

CAP = float(os.environ.get("SFG_BENCH_IDLE_CAP", "3"))


class _CappedTime:
    """The ``time`` module as that loop sees it, with ``sleep`` capped."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, CAP))


if __name__ == "__main__":
    loop.time = _CappedTime()  # type: ignore[assignment]
    flower_supernode()
