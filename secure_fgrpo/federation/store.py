"""Small persistence helpers: atomic writes and per-round state files, so a killed process
resumes from its last completed round and never from a half-written one."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..fileio import atomic_target, write_private

_ROUND = re.compile(r"round-(\d+)")
FINAL_EVAL = "final_eval.json"  # RUN/clients/<name>/: the client's accuracy of the last global adapter


def write_json_atomic(path: Path, obj: Any, private: bool = False) -> None:
    if private:
        write_private(path, json.dumps(obj, indent=1).encode())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with atomic_target(path, tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1)
        os.replace(tmp, path)


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    with atomic_target(path, tmp):
        np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
        os.replace(tmp, path)


def round_files(folder: Path, suffix: str) -> dict[int, Path]:
    out = {}
    if folder.exists():
        for p in folder.glob(f"round-*{suffix}"):
            m = _ROUND.match(p.name)
            if m and not p.name.endswith(".tmp" + suffix):
                out[int(m.group(1))] = p
    return out


def latest_upto(folder: Path, suffix: str, last_round: int) -> tuple[int, Path] | None:
    """The newest per-round file at or before ``last_round`` (later ones belong to a round
    that never completed and will be re-run)."""
    files = {r: p for r, p in round_files(folder, suffix).items() if r <= last_round}
    if not files:
        return None
    r = max(files)
    return r, files[r]


def prune(folder: Path, suffix: str, keep: int = 2) -> None:
    files = round_files(folder, suffix)
    for r in sorted(files)[:-keep]:
        files[r].unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    """A state file this package wrote; a damaged one is named, not a bare JSONDecodeError."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: damaged state file ({err}); restore it, or start the run over "
                              "with --fresh") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as err:
                raise CheckpointError(f"{path}: line {i} is damaged ({err}); restore the file, or start "
                                      "the run over with --fresh") from None
    return rows


class JsonlLog:
    """An append-only metrics file whose rows carry a ``round``; resuming drops rows of
    rounds that did not complete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return read_jsonl(self.path)

    def truncate_after(self, last_round: int) -> None:
        keep = [r for r in self.rows() if r.get("round", -1) <= last_round]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in keep))
