"""The Flower server side: per round, name the nodes, send stage 0 (the round's public
parameters and the global vector), then one exchange per protocol stage (send replies, gather
with a deadline, process). A missed deadline is a dropout; the secure sum recovers from it or
aborts the round cleanly, and the next round runs. The server party itself — update rule,
global model, checkpoints — is federation/coordinator.py, the same object the in-process run
drives; the run folder ``out_dir`` makes a restarted ServerApp resume at the next round.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from flwr.serverapp import Grid

from ..config import load_config
from ..federation.coordinator import Coordinator as ServerParty
from ..federation.global_model import GlobalModel
from ..federation.local import export_global, initial_adapter
from ..federation.release import Release, settle
from ..federation.server import Server
from ..federation.setup import vector_digest
from ..model.load import resolve_model_path
from ..model.vector import to_vector
from ..privacy.client_dp import SkellamNoise
from ..privacy.plan import ClientLevelPlan
from ..rounds import threshold_for
from ..secure_sum import RoundAborted, SumOutcome, make_backend
from ..secure_sum.base import SERVER, server_state_dir
from ..secure_sum.base import Message as SumMessage
from ..secure_sum.driver import process_stage
from ..secure_sum.masked.keys import load_roster
from ..secure_sum.transcript import TranscriptRecorder
from .config import ServerConfig
from .link import FlowerLink, StageStats
from .wire import Envelope

log = logging.getLogger(__name__)
BACKENDS = ("masked",)  # the server learns the sum and keeps the global model


class Coordinator:
    def __init__(self, grid: Grid, cfg: ServerConfig) -> None:
        self.grid, self.cfg = grid, cfg
        self.link = FlowerLink(grid, cfg.poll)
        self.fed = fed = load_config(cfg.config)
        if fed.secure_sum.backend not in BACKENDS:
            raise ValueError(f"secure_sum.backend: {fed.secure_sum.backend!r} does not run over Flower yet "
                             f"(one of {', '.join(BACKENDS)})")
        if fed.pubswap.enabled:
            raise ValueError("pubswap.enabled: PubSwap runs in the in-process federation (secure-fgrpo run) only, "
                             "not over Flower yet: set it false for flwr run")
        self.roster = set(load_roster(cfg.roster))
        names = [c.name for c in fed.clients]
        missing = sorted(set(names) - self.roster)
        if missing:
            raise ValueError(f"run-config 'roster' {cfg.roster}: no key for {', '.join(missing)}")
        self.model_path = resolve_model_path(fed.model.path, fed.model.embedded)
        self.model, self.tok, self.layout = initial_adapter(fed, self.model_path)
        model, layout = self.model, self.layout
        root = cfg.out_dir / "server"
        self.server = Server(root, fed, names)
        last = self.server.last_completed_round
        self.global_model = GlobalModel([root / "checkpoints"], fed.server, to_vector(model, layout), upto=last)
        self.plan = ClientLevelPlan.build(fed, layout.size + 1)
        self.party = ServerParty(fed, self.server, self.global_model, self.plan, layout.size)
        options = {k: v for k, v in fed.backend_options.items() if k not in ("policy", "client_policies")}
        self.backend = make_backend(fed.secure_sum.backend, {**options, "roster": str(cfg.roster)})
        self.recorder = TranscriptRecorder(root / "transcript.jsonl", None)
        self.recorder.truncate_after(last)
        self.server.metrics.truncate_after(last)
        self.names: dict[int, str] = {}  # node id -> institution, from each node's hello

    def export_adapter(self) -> Path:
        """The global adapter (peft format) into ``out_dir/server/global_adapter``: the server
        learned the sum, so it holds the global model."""
        out = self.cfg.out_dir / "server" / "global_adapter"
        export_global(self.fed, self.model, self.tok, self.layout, self.global_model.state.vector, self.model_path,
                      [out])
        return out

    @property
    def next_round(self) -> int:
        return self.server.last_completed_round + 1

    def _event(self, name: str, row: dict[str, Any]) -> None:
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
        online = set(self.grid.get_node_ids())
        self._hello(round_, online)
        sampled = self.server.participants(round_)
        active = {nid: name for nid, name in self.names.items() if nid in online and name in sampled}
        row: dict[str, Any] = {"round": round_, "sampled": sampled, "participants": sorted(active.values()),
                               "stages": {}, "nodes": {}}
        if len(active) < threshold_for(self.fed, len(sampled)):
            return self._close(row, None, f"{len(active)} of {len(sampled)} sampled node(s) online, threshold "
                                          f"{threshold_for(self.fed, len(sampled))}")
        try:
            setup = self.party.open_round(round_, sorted(active.values()))
        except RuntimeError as err:  # the privacy plan was calibrated for every sampled node
            return self._close(row, None, str(err))
        noise = self.plan.noise(setup.spec) if self.plan is not None else None
        spec = noise.widen(setup.spec) if noise is not None else setup.spec
        payload = setup.pack(self.global_model.state.vector)
        got, _ = self._exchange("setup", round_, {nid: Envelope(round_, "setup", "setup", payload) for nid in active},
                                active, row, self.cfg.train_timeout)
        live = {active[nid]: nid for nid in got}
        in_backend = {"noise": noise} if isinstance(noise, SkellamNoise) else {}
        server = self.backend.server(spec, server_state_dir(self.cfg.out_dir), **in_backend)
        gone: set[str] = set(spec.participants) - set(live)
        replies: dict[str, SumMessage] = {}
        try:
            for i, stage in enumerate(server.stages):
                # The first stage opens the round (no server message); later ones go only to the
                # nodes the server replied to.
                out = {nid: Envelope(round_, stage, replies[n].kind, replies[n].payload) if i else
                       Envelope(round_, stage) for n, nid in live.items()
                       if n not in gone and (i == 0 or n in replies)}
                got, _ = self._exchange(stage, round_, out, active, row, self.cfg.stage_timeout)
                inbound = {active[nid]: SumMessage(round_, stage, active[nid], SERVER, env.kind, env.payload)
                           for nid, env in got.items()}
                for msg in inbound.values():
                    self.recorder.record(msg)
                gone |= {active[nid] for nid in out} - set(inbound)
                replies = process_stage(server, stage, inbound, gone)
            outcome = server.outcome()
        except RoundAborted as err:
            return self._close(row, None, str(err))
        return self._close(row, settle(self.plan, self.backend, spec, noise, outcome, outcome.total), "")

    def _exchange(self, stage: str, round_: int, out: dict[int, Envelope], active: dict[int, str],
                  row: dict[str, Any], timeout: float) -> tuple[dict[int, Envelope], StageStats]:
        self._event("progress.jsonl", {"round": round_, "stage": stage, "event": "sent"})
        got, stats = self.link.exchange(stage, round_, out, timeout)
        entry = asdict(stats)
        entry["missed"] = [active.get(n, str(n)) for n in stats.missed]
        entry["withdrew"] = [active.get(n, str(n)) for n in stats.withdrew]
        row["stages"][stage] = entry
        for nid, env in got.items():  # each node's own compute, as it reported it
            node = row["nodes"].setdefault(active[nid], {"train_seconds": 0.0, "sum_seconds": 0.0})
            node["train_seconds"] += env.train_seconds
            node["sum_seconds"] += env.seconds
        self._event("progress.jsonl", {"round": round_, "stage": stage, "event": "done"})
        return got, stats

    def _close(self, row: dict[str, Any], release: Release | None, aborted: str) -> dict[str, Any]:
        """The server party applies what the sum revealed, checkpoints and marks the round done."""
        r = row["round"]
        if release is None:
            release = Release(SumOutcome(contributors=(), total=None, aborted=True, reason=aborted), None,
                              self.party.server.sum_spec(r, row["participants"] or row["sampled"], self.party.dim),
                              None, {})
        metrics, known = self.party.close_round(r, release)
        outcome = release.outcome
        row.update(aborted=bool(metrics["aborted"]), reason=metrics.get("reason", ""),
                   contributors=list(outcome.contributors), global_digest=vector_digest(self.global_model.state.vector),
                   total=None if release.total is None else [float(x) for x in np.asarray(release.total)[-1:]], **known)
        self.server.metrics.append({**metrics, **known})
        self.server.mark_completed(r)
        if row["aborted"]:
            log.warning("round %d aborted: %s", r, row["reason"])
        else:
            log.info("round %d: sum over %s", r, ", ".join(row["contributors"]))
        self._event("rounds.jsonl", row)
        return row
