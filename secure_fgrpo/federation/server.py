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
        """This round's sample. ``fixed``: k = round(fraction·n) (at least 2) without replacement;
        ``poisson``: every client independently with probability ``fraction``, the sampling the
        client-level accountant's amplification assumes (the count varies; it may be < 2, and the
        round then has nothing to sum). Seeded by (seed, round): a resumed run draws the same."""
        return self._draw(round_, self.excluded)

    def _draw(self, round_: int, excluded: dict[str, str]) -> list[str]:
        fed = self.run.federation
        rng = random.Random(derive_seed(self.run.seed, "sample", round_))
        if fed.sampling == "poisson":  # one draw per client, excluded or not: the others keep theirs
            return [c for c in self.clients if rng.random() < fed.fraction and c not in excluded]
        pool = [c for c in self.clients if c not in excluded]
        k = participants_per_round(self.run)
        return sorted(rng.sample(pool, min(k, len(pool))))

    def most_rounds_sampled(self, upto: int) -> int:
        """The most rounds in 1..upto any one client was sampled in: what a party that sees the
        roster (this server) can charge a client's privacy loss to (privacy/plan.py). Poisson
        draws are recomputed without exclusions (a superset of each round's sample); a fixed-size
        draw changes with its pool, so after an exclusion every round counts (an upper bound)."""
        if self.run.federation.sampling == "fixed" and self.excluded:
            return upto
        counts: dict[str, int] = {}
        for r in range(1, upto + 1):
            for c in self._draw(r, {}):
                counts[c] = counts.get(c, 0) + 1
        return max(counts.values(), default=0)

    def sum_spec(self, round_: int, participants: list[str], dim: int) -> SumSpec:
        data_bound, weight_bound = sum_bounds(self.run)
        return SumSpec(round=round_, dim=dim + 1, data_bound=data_bound, weight_bound=weight_bound,
                       participants=tuple(participants), threshold=threshold_for(self.run, len(participants)),
                       seed=self.run.seed)
