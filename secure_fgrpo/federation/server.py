"""The coordinating server: samples clients, sets each round's public parameters, and turns
the secure sum into the next global adapter. It never holds an individual vector."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..gain import weight_bound
from ..secure_sum.base import SumOutcome, SumSpec
from ..seeding import derive_seed
from .store import JsonlLog, latest_upto, prune, save_npz_atomic, write_json_atomic
from .update import ServerOptState, apply_update, ratio_of_sums

log = logging.getLogger(__name__)


@dataclass
class GlobalState:
    """Last completed round, the global adapter vector, and the server optimizer's state."""

    round: int
    vector: np.ndarray
    opt: ServerOptState


class Server:
    def __init__(self, root: Path, run: RunConfig, clients: list[str], initial: np.ndarray) -> None:
        self.root, self.run, self.clients = root, run, sorted(clients)
        self.ckpt_dir = root / "checkpoints"
        self.metrics = JsonlLog(root / "metrics.jsonl")
        self.state = self._load(initial)

    def _load(self, initial: np.ndarray) -> GlobalState:
        found = latest_upto(self.ckpt_dir, ".npz", 10**9)
        if found is None:
            return GlobalState(0, initial.astype(np.float32), ServerOptState())
        r, path = found
        with np.load(path) as z:
            if z["vector"].shape != initial.shape:
                raise ValueError(f"{path}: checkpoint has {z['vector'].shape[0]} parameters, the "
                                 f"configured adapter has {initial.shape[0]}: different model or lora settings")
            opt = ServerOptState(m=z["m"] if "m" in z else None, v=z["v"] if "v" in z else None)
            return GlobalState(r, z["vector"].copy(), opt)

    def save(self) -> None:
        """Checkpoint first, then the marker; a kill in between re-runs this round."""
        arrays = {"vector": self.state.vector}
        if self.state.opt.m is not None:
            arrays.update(m=self.state.opt.m, v=self.state.opt.v)
        save_npz_atomic(self.ckpt_dir / f"round-{self.state.round}.npz", **arrays)
        prune(self.ckpt_dir, ".npz")
        write_json_atomic(self.root / "state.json", {"last_completed_round": self.state.round})

    def participants(self, round_: int) -> list[str]:
        k = max(2, round(self.run.federation.fraction * len(self.clients)))
        rng = random.Random(derive_seed(self.run.seed, "sample", round_))
        return sorted(rng.sample(self.clients, min(k, len(self.clients))))

    def sum_spec(self, round_: int, participants: list[str], dim: int) -> SumSpec:
        fed = self.run.federation
        max_examples = self.run.grpo.steps * self.run.grpo.prompts_per_step
        e_max = weight_bound(fed.strategy, max_examples, self.run.gain)
        t = max(1, int(np.ceil(self.run.secure_sum.threshold * len(participants))))
        return SumSpec(round=round_, dim=dim + 1, data_bound=e_max * fed.delta_clip, weight_bound=e_max,
                       participants=tuple(participants), threshold=t, seed=self.run.seed)

    def finish_round(self, round_: int, outcome: SumOutcome, total: np.ndarray | None) -> dict:
        """Apply Σe·Δ/Σe when the round completed; in every case record the round as done.
        ``total`` is the sum as known to whoever applies the update (the server, or in
        server-blind mode the clients — then the server's own view stays ``None``)."""
        row: dict = {"round": round_, "contributors": len(outcome.contributors), "aborted": outcome.aborted}
        if outcome.aborted or total is None:
            row["reason"] = outcome.reason or "no aggregate"
        elif not total[-1] > 0:
            row.update(aborted=True, reason="sum of weights is 0 (no client had an informative group)")
        else:
            update = ratio_of_sums(total)
            vec, opt = apply_update(self.state.vector, update, self.run.server, self.state.opt)
            self.state = GlobalState(round_, vec, opt)
            row["update_norm"] = float(np.linalg.norm(update))
            if outcome.total is not None:
                row["sum_of_weights"] = float(total[-1])  # an aggregate: the server may know it
        self.state.round = round_
        return row
