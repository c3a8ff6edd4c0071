"""Helpers for the Flower tests: bounded waits and the rounds the coordinator recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

flwr = pytest.importorskip("flwr", reason="the Flower tests need the 'flower' extra (pip install -e '.[flower]')")


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dropouts(row: dict) -> dict[str, set[str]]:
    """The recorded round's dropouts as the in-process driver's schedule: a node that missed a
    stage's deadline (or withdrew at it) is gone before that stage."""
    out: dict[str, set[str]] = {}
    seen: set[str] = set()
    for stage, stats in row["stages"].items():
        new = (set(stats["missed"]) | set(stats["withdrew"])) - seen
        if new and stage != "setup":
            out[stage] = new
        seen |= new
    return out


