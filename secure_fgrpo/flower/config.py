"""The ServerApp's run config (``[tool.flwr.app.config]``, overridable with ``flwr run -c``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _get(cfg: Mapping[str, Any], key: str, typ: type, default: Any) -> Any:
    value = cfg.get(key, default)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (isinstance(value, bool) and typ is not bool) or not isinstance(value, typ):
        raise ValueError(f"run-config: {key!r} must be a {typ.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class ServerConfig:
    """``config``: the federation config TOML (every node holds the same; stage 0 carries its
    digest). ``roster``: the public roster the coordinator verifies signatures with. ``out_dir``:
    the server's run folder (global checkpoints, metrics, transcript, per-round stage records);
    running again with the same one resumes at the next round. ``rounds``: 0 = the config's
    federation.rounds. ``train_timeout``: stage 0's deadline (the nodes train in it).
    ``min_nodes``: wait (up to ``connect_timeout`` s) for this many SuperNodes before the first
    round, and up to ``round_wait`` s before each later round (then run with whoever is online)."""

    config: Path
    roster: Path
    out_dir: Path
    rounds: int
    stage_timeout: float
    train_timeout: float
    connect_timeout: float
    round_wait: float
    min_nodes: int
    poll: float

    @classmethod
    def from_run_config(cls, cfg: Mapping[str, Any]) -> ServerConfig:
        for key in ("config", "roster", "out-dir"):
            if not _get(cfg, key, str, ""):
                raise ValueError(f"run-config: {key!r} (a path) is required")
        c = cls(config=Path(_get(cfg, "config", str, "")), roster=Path(_get(cfg, "roster", str, "")),
                out_dir=Path(_get(cfg, "out-dir", str, "")), rounds=_get(cfg, "rounds", int, 0),
                stage_timeout=_get(cfg, "stage-timeout", float, 60.0),
                train_timeout=_get(cfg, "train-timeout", float, 900.0),
                connect_timeout=_get(cfg, "connect-timeout", float, 120.0),
                round_wait=_get(cfg, "round-wait", float, 0.0),
                min_nodes=_get(cfg, "min-nodes", int, 2), poll=_get(cfg, "poll", float, 0.1))
        if c.rounds < 0 or c.min_nodes < 1:
            raise ValueError("run-config: 'rounds' must be >= 0 and 'min-nodes' >= 1")
        if not (c.stage_timeout > 0 and c.train_timeout > 0 and c.connect_timeout > 0 and c.poll > 0
                and c.round_wait >= 0):
            raise ValueError("run-config: 'stage-timeout', 'train-timeout', 'connect-timeout' and 'poll' must "
                             "be > 0, 'round-wait' >= 0")
        return c
