"""The coordinator's loop: per round, name the nodes, send stage 0, then one exchange per
protocol stage (send replies, gather with a deadline, process). A missed deadline is a dropout;
the secure sum recovers from it or aborts the round cleanly, and the next round runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flwr.serverapp import Grid

from ..secure_sum import RoundAborted, SumSpec, make_backend
from ..secure_sum.base import SERVER
from ..secure_sum.base import Message as SumMessage
from ..secure_sum.driver import process_stage
from ..secure_sum.masked.keys import load_roster
from .codec import RoundSetup
from .config import ServerConfig
from .link import FlowerLink, StageStats
from .wire import Envelope

log = logging.getLogger(__name__)


class Coordinator:
    def __init__(self, grid: Grid, cfg: ServerConfig) -> None:
        self.grid = grid
        self.cfg = cfg
        self.link = FlowerLink(grid, cfg.poll)
        self.roster = set(load_roster(cfg.roster))
        self.backend = make_backend("masked", {**cfg.public_options, "roster": str(cfg.roster)})
        self.names: dict[int, str] = {}  # node id -> institution, from each node's hello

    def _event(self, name: str, row: dict[str, Any]) -> None:
        if self.cfg.out_dir is not None:
            self.cfg.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.cfg.out_dir / name, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def _hello(self, round_: int, online: set[int]) -> None:
        """Learn the names of nodes seen for the first time (a restarted SuperNode included)."""
        new = sorted(online - set(self.names))
        if not new:
            return
        got, _ = self.link.exchange("hello", round_, {n: Envelope(round_, "hello") for n in new},
                                    self.cfg.stage_timeout)
        for node_id, env in sorted(got.items()):
            name = env.payload.decode("utf-8", "replace")
            holder = next((n for n, m in self.names.items() if m == name), None)
            if name not in self.roster:
                log.warning("node %d calls itself %r, which is not in the roster %s: ignored",
                            node_id, name, self.cfg.roster)
            elif holder is not None and holder in online:
                log.warning("node %d calls itself %r, already the name of online node %d: ignored",
                            node_id, name, holder)
            else:
                if holder is not None:
                    del self.names[holder]  # the institution came back under a new node id
                self.names[node_id] = name

    def run_round(self, round_: int) -> dict[str, Any]:
        cfg = self.cfg
        online = set(self.grid.get_node_ids())
        self._hello(round_, online)
        active = {nid: name for nid, name in self.names.items() if nid in online}
        row: dict[str, Any] = {"round": round_, "participants": sorted(active.values()), "stages": {}}
        if len(active) < cfg.threshold:
            return self._finish(row, aborted=f"{len(active)} named node(s) online, threshold {cfg.threshold}")
        spec = SumSpec(round_, cfg.dim, cfg.data_bound, cfg.weight_bound, tuple(sorted(active.values())),
                       cfg.threshold, cfg.seed)
        setup = RoundSetup(spec, "masked", cfg.public_options).to_bytes()
        got, _ = self._exchange("setup", round_, {nid: Envelope(round_, "setup", "setup", setup)
                                                       for nid in active}, active, row)
        live = {active[nid]: nid for nid in got}
        server = self.backend.server(spec, Path("."))
        gone: set[str] = set(spec.participants) - set(live)
        replies: dict[str, SumMessage] = {}
        try:
            for i, stage in enumerate(server.stages):
                # The first stage opens the round (no server message); later ones go only to the
                # nodes the server replied to.
                out = {nid: Envelope(round_, stage, replies[n].kind, replies[n].payload) if i else
                       Envelope(round_, stage) for n, nid in live.items()
                       if n not in gone and (i == 0 or n in replies)}
                got, _stats = self._exchange(stage, round_, out, active, row)
                inbound = {active[nid]: SumMessage(round_, stage, active[nid], SERVER, env.kind, env.payload)
                           for nid, env in got.items()}
                gone |= {active[nid] for nid in out} - set(inbound)
                replies = process_stage(server, stage, inbound, gone)
            outcome = server.outcome()
        except RoundAborted as err:
            return self._finish(row, aborted=str(err))
        row["contributors"] = list(outcome.contributors)
        row["total"] = None if outcome.total is None else [float(x) for x in outcome.total]
        return self._finish(row)

    def _exchange(self, stage: str, round_: int, out: dict[int, Envelope], active: dict[int, str],
                  row: dict[str, Any]) -> tuple[dict[int, Envelope], StageStats]:
        self._event("progress.jsonl", {"round": round_, "stage": stage, "event": "sent"})
        got, stats = self.link.exchange(stage, round_, out, self.cfg.stage_timeout)
        entry = asdict(stats)
        entry["missed"] = [active.get(n, str(n)) for n in stats.missed]
        entry["withdrew"] = [active.get(n, str(n)) for n in stats.withdrew]
        row["stages"][stage] = entry
        self._event("progress.jsonl", {"round": round_, "stage": stage, "event": "done"})
        return got, stats

    def _finish(self, row: dict[str, Any], aborted: str = "") -> dict[str, Any]:
        row["aborted"] = bool(aborted)
        row["reason"] = aborted
        if aborted:
            row.setdefault("contributors", [])
            log.warning("round %d aborted: %s", row["round"], aborted)
        else:
            log.info("round %d: sum over %s", row["round"], ", ".join(row["contributors"]))
        self._event("rounds.jsonl", row)
        return row
