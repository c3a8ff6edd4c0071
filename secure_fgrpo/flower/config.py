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
    """``roster``: the public roster the coordinator verifies signatures with. ``out_dir``:
    where the coordinator writes what it learned per round ('' = logs only). ``min_nodes``:
    wait (up to ``connect_timeout`` s) for this many SuperNodes before round 1, and up to
    ``round_wait`` s before each later round (then run with whoever is online)."""

    rounds: int
    dim: int
    threshold: int
    data_bound: float
    weight_bound: float
    roster: Path
    out_dir: Path | None
    stage_timeout: float
    connect_timeout: float
    round_wait: float
    min_nodes: int
    poll: float
    seed: int
    modulus_bits: int
    prg: str

    @classmethod
    def from_run_config(cls, cfg: Mapping[str, Any]) -> ServerConfig:
        out = _get(cfg, "out-dir", str, "")
        roster = _get(cfg, "roster", str, "")
        if not roster:
            raise ValueError("run-config: 'roster' (path to the public roster JSON) is required")
        c = cls(rounds=_get(cfg, "rounds", int, 1), dim=_get(cfg, "dim", int, 1000),
                threshold=_get(cfg, "threshold", int, 2), data_bound=_get(cfg, "data-bound", float, 1.0),
                weight_bound=_get(cfg, "weight-bound", float, 1.0), roster=Path(roster),
                out_dir=Path(out) if out else None, stage_timeout=_get(cfg, "stage-timeout", float, 60.0),
                connect_timeout=_get(cfg, "connect-timeout", float, 120.0),
                round_wait=_get(cfg, "round-wait", float, 0.0),
                min_nodes=_get(cfg, "min-nodes", int, 2), poll=_get(cfg, "poll", float, 0.1),
                seed=_get(cfg, "seed", int, 0), modulus_bits=_get(cfg, "modulus-bits", int, 32),
                prg=_get(cfg, "prg", str, "aes-ctr"))
        for key, value in (("rounds", c.rounds), ("dim", c.dim - 1), ("threshold", c.threshold - 1),
                           ("min-nodes", c.min_nodes)):
            if value < 1:
                raise ValueError(f"run-config: {key!r} is too small")
        if not (c.stage_timeout > 0 and c.connect_timeout > 0 and c.poll > 0 and c.round_wait >= 0):
            raise ValueError("run-config: 'stage-timeout', 'connect-timeout' and 'poll' must be > 0, "
                             "'round-wait' >= 0")
        return c

    @property
    def public_options(self) -> dict[str, Any]:
        return {"signed": True, "modulus_bits": self.modulus_bits, "prg": self.prg}
