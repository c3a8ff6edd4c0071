"""Who owns a run folder, and whether a config may continue it.

A folder this package creates carries a marker file; nothing else is ever deleted, and a
non-empty folder without the marker (or a run's ``config.json``) is refused. A run is
continued only under a config that gives the same results: the keys that may differ are
listed in ``MAY_DIFFER`` (and ``federation.rounds`` when no differential privacy is
configured, since DP noise is calibrated to the total number of rounds)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import RunFolderError
from .federation.store import write_json_atomic

MARKER = ".secure_fgrpo-run"
CONFIG = "config.json"
# Everything the package writes at a run's top level; --fresh removes these and nothing else.
PACKAGE_ENTRIES: tuple[str, ...] = (MARKER, CONFIG, "layout.json", "global_metrics.jsonl", "accuracy.png",
                                    "server", "clients", "audit")
# How a run is computed, not what it computes: workers only schedules the same per-client
# jobs (each seeded by client and round); the device moves the same arithmetic to a GPU.
MAY_DIFFER: tuple[str, ...] = ("federation.workers", "model.device")
ROUNDS = "federation.rounds"
STARTED = ("server", "clients")  # a run has computed something (keys, a round) once one of these exists
Mode = Literal["resume", "fresh"]


@dataclass(frozen=True)
class RunFolder:
    path: Path
    existed: bool  # a run of ours was already there (resumed, or cleared with --fresh)


def flatten(raw: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (a changed client list is one key)."""
    if not isinstance(raw, dict):
        return {prefix: raw}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differing_keys(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ and that change a run's results."""
    a, b = flatten(old), flatten(new)
    private = any(v is not None for k, v in {**a, **b}.items()
                  if k.startswith(("privacy.client_level", "privacy.example_level")))
    allowed = set(MAY_DIFFER) | (set() if private else {ROUNDS})
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in allowed)


def is_run(path: Path) -> bool:
    """Ours: the marker, or (runs made before the marker existed) a run's config.json."""
    if (path / MARKER).is_file():
        return True
    cfg = path / CONFIG
    if not cfg.is_file():
        return False
    try:
        raw = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and {"clients", "federation", "secure_sum"} <= set(raw)


def open_run_folder(path: Path, raw_cfg: dict, mode: Mode) -> RunFolder:
    """Make ``path`` a run folder for ``raw_cfg`` and save the config there.

    ``resume``: continue a run of the same config (or start one). ``fresh``: remove the files
    this package wrote there, then start over. Any non-empty folder that is not a run of
    ours is refused, whatever the mode."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path}: exists and is a file, not a folder; choose another --out")
    existed = path.is_dir() and is_run(path)
    if path.is_dir() and not existed:
        found = sorted(p.name for p in path.iterdir())
        if found:
            listed = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            raise RunFolderError(f"{path}: not empty and not a secure_fgrpo run (holds {listed}); "
                                 "nothing was changed there: choose another --out")
    if existed and mode == "fresh":
        _clear(path)
        existed = False
    elif existed:
        _check_same_config(path, raw_cfg)
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path / MARKER, {"package": "secure_fgrpo",
                                          "note": "created by secure_fgrpo; --fresh deletes only its own files"})
        save_config(path, raw_cfg)
    except OSError as err:
        raise RunFolderError(f"{path}: cannot write the run folder there ({err.strerror or err})") from None
    return RunFolder(path, existed)


def save_config(path: Path, raw_cfg: dict) -> None:
    write_json_atomic(Path(path) / CONFIG, raw_cfg)


def _check_same_config(path: Path, raw_cfg: dict) -> None:
    cfg_file = path / CONFIG
    if not cfg_file.is_file() or not any((path / d).exists() for d in STARTED):
        return  # nothing computed yet (say the first try stopped on a bad data file): the new config applies
    try:
        old = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{cfg_file}: unreadable ({err}); cannot tell whether this config may "
                             "continue the run") from None
    keys = differing_keys(old, raw_cfg)
    if keys:
        shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        raise RunFolderError(f"{path}: holds a run with a different config ({shown}); continue it with "
                             "the same config, or start over with --fresh or another --out")


def _clear(path: Path) -> None:
    for name in PACKAGE_ENTRIES:
        p = path / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
