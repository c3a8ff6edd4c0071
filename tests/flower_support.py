"""Helpers for the Flower tests: bounded waits, the rounds the coordinator recorded, and the
same round run in process for comparison."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secure_fgrpo.flower.synthetic import synthetic_input
from secure_fgrpo.secure_sum import DropSchedule, SumSpec, make_backend, run_secure_sum
from secure_fgrpo.secure_sum.masked import quantisation_bound

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


def round_spec(row: dict, dim: int, threshold: int) -> SumSpec:
    return SumSpec(row["round"], dim, 1.0, 1.0, tuple(row["participants"]), threshold, 0)


def in_process_total(spec: SumSpec, roster: Path, state_dirs: dict[str, Path], seeds: dict[str, int],
                     dropped_before: dict[str, set[str]]) -> tuple[tuple[str, ...], np.ndarray]:
    """The same round (spec, roster, identities, inputs, dropouts) through the in-process driver."""
    backend = make_backend("masked", {"roster": str(roster)})
    server = backend.server(spec, Path("."))
    clients = {n: backend.client(n, spec, state_dirs[n]) for n in spec.participants}
    for n, c in clients.items():
        c.set_input(synthetic_input(seeds[n], spec))

    class _Nothing:
        def record(self, msg: object) -> None:
            pass

    out = run_secure_sum(server, clients, _Nothing(), DropSchedule(dropped_before))
    assert not out.aborted and out.total is not None, out.reason
    return out.contributors, out.total


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


def exact_sum(spec: SumSpec, names: list[str], seeds: dict[str, int]) -> np.ndarray:
    return np.sum([synthetic_input(seeds[n], spec) for n in names], axis=0)


def bound(spec: SumSpec, n: int) -> float:
    return quantisation_bound(spec, n)
