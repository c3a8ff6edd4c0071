"""The global adapter, its server optimizer state and the update rule, kept wherever the sum
is revealed: at the server, or — when the backend keeps even the aggregate from the server
(CKKS server-blind) — at every client, each holding an identical copy. Storing it at the
server in that mode would let the server recover each round's aggregate by differencing."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .store import latest_upto, prune, save_npz_atomic
from .update import ServerOptConfig, ServerOptState, apply_update, ratio_of_sums


@dataclass
class GlobalState:
    round: int
    vector: np.ndarray
    opt: ServerOptState


class GlobalModel:
    def __init__(self, dirs: list[Path], opt_cfg: ServerOptConfig, initial: np.ndarray, upto: int) -> None:
        if not dirs:
            raise ValueError("GlobalModel needs at least one folder to keep its checkpoints")
        self.dirs, self.opt_cfg = dirs, opt_cfg
        self.state = self._load(initial, upto)

    def _load(self, initial: np.ndarray, upto: int) -> GlobalState:
        """The checkpoint of the last *completed* round (a later one is from a round that was
        interrupted before every party saved, and is re-run)."""
        found = latest_upto(self.dirs[0], ".npz", upto)
        if found is None:
            return GlobalState(0, initial.astype(np.float32), ServerOptState())
        r, path = found
        try:
            with np.load(path) as z:
                vector = z["vector"].copy()
                opt = ServerOptState(m=z["m"].copy() if "m" in z else None, v=z["v"].copy() if "v" in z else None)
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
            raise CheckpointError(f"{path}: damaged checkpoint ({type(err).__name__}: {err}); restore it, or "
                                  "start the run over with --fresh") from None
        if vector.shape != initial.shape:
            raise CheckpointError(f"{path}: checkpoint has {vector.shape[0]} parameters, the configured "
                                  f"adapter has {initial.shape[0]}: different model or lora settings")
        return GlobalState(r, vector, opt)

    def apply(self, total: np.ndarray) -> float:
        """Σe·Δ/Σe through the server optimizer; returns the update's norm."""
        update = ratio_of_sums(total)
        vec, opt = apply_update(self.state.vector, update, self.opt_cfg, self.state.opt)
        self.state = GlobalState(self.state.round, vec, opt)
        return float(np.linalg.norm(update))

    def save(self, round_: int) -> None:
        self.state.round = round_
        arrays = {"vector": self.state.vector}
        if self.state.opt.m is not None:
            arrays["m"] = self.state.opt.m
        if self.state.opt.v is not None:
            arrays["v"] = self.state.opt.v
        for d in self.dirs:
            save_npz_atomic(d / f"round-{round_}.npz", **arrays)
            prune(d, ".npz")
