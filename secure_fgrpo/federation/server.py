"""The coordinating server: samples clients, sets each round's public parameters, relays the
secure sum and records what it saw. It never holds an individual vector."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from ..config import RunConfig
from ..errors import CheckpointError
from ..rounds import participants_per_round, sum_bounds, threshold_for
from ..secure_sum.base import SumSpec
from ..seeding import derive_seed
from .store import JsonlLog, write_json_atomic

log = logging.getLogger(__name__)


class Server:
    def __init__(self, root: Path, run: RunConfig, clients: list[str]) -> None:
        self.root, self.run, self.clients = root, run, sorted(clients)
        self.metrics = JsonlLog(root / "metrics.jsonl")

    @property
    def last_completed_round(self) -> int:
        p = self.root / "state.json"
        if not p.exists():
            return 0
        try:
            done = json.loads(p.read_text())["last_completed_round"]
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{p}: unreadable server state ({type(err).__name__}: {err}); "
                                  "restore it or start over with --fresh") from None
        if not isinstance(done, int) or isinstance(done, bool) or done < 0:
            raise CheckpointError(f"{p}: last_completed_round must be a round number, got {done!r}")
        return done

    def mark_completed(self, round_: int) -> None:
        """Written after every party saved its state for the round: the resume point."""
        write_json_atomic(self.root / "state.json", {"last_completed_round": round_})

    @property
    def excluded(self) -> dict[str, str]:
        """Clients a secure sum proved misbehaving (name -> evidence): never sampled again."""
        p = self.root / "excluded.json"
        return dict(json.loads(p.read_text())) if p.exists() else {}

    def exclude(self, blamed: dict[str, str]) -> None:
        if blamed:
            log.warning("excluding %s from later rounds: %s", sorted(blamed), blamed)
            write_json_atomic(self.root / "excluded.json", {**self.excluded, **blamed})

    def participants(self, round_: int) -> list[str]:
        pool = [c for c in self.clients if c not in self.excluded]
        k = participants_per_round(self.run)
        rng = random.Random(derive_seed(self.run.seed, "sample", round_))
        return sorted(rng.sample(pool, min(k, len(pool))))

    def sum_spec(self, round_: int, participants: list[str], dim: int) -> SumSpec:
        data_bound, weight_bound = sum_bounds(self.run)
        return SumSpec(round=round_, dim=dim + 1, data_bound=data_bound, weight_bound=weight_bound,
                       participants=tuple(participants), threshold=threshold_for(self.run, len(participants)),
                       seed=self.run.seed)
