"""The in-process federation: R rounds of sample -> local GRPO -> secure sum -> update.

Client compute runs in worker processes (one thread each: at this model size two
single-threaded workers beat one two-threaded process); every protocol message still passes
through the secure-sum driver and the server's transcript recorder."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import RunConfig
from ..data.fit import check_fits
from ..errors import CheckpointError
from ..grpo.evaluate import Scored, accuracy, accuracy_by_family, pass_at_1, score
from ..model.load import resolve_model_path
from ..model.vector import load_vector, to_vector
from ..privacy.plan import ClientLevelPlan
from ..rollout import SamplingSpec, make_rollout
from ..rounds import MIN_TO_SUM
from ..secure_sum import DropSchedule, make_backend
from ..secure_sum.base import SumClient, client_state_dir
from ..secure_sum.transcript import TranscriptRecorder
from ..seeding import derive_seed
from ..tasks.base import Problem
from .client import Client
from .coordinator import Coordinator
from .datasets import build_data
from .exchange import Relay, sealing_keys, swap_party
from .global_model import GlobalModel
from .local import (
    TrainJob,
    TrainOutcome,
    eval_seed_of,
    export_global,
    initial_adapter,
    run_training,
)
from .party import Party, Refused
from .population import LazyMap, capacity
from .public_set import public_set
from .release import release_round
from .server import Server
from .store import FINAL_EVAL, JsonlLog, write_json_atomic
from .workers import worker_pool

log = logging.getLogger(__name__)
Event = Callable[[str, dict], None]


@dataclass
class RunSummary:
    rounds: list[dict] = field(default_factory=list)  # server metrics rows (aggregates only)
    stopped: str = ""  # why the run ended before federation.rounds (a privacy budget), if it did


def eval_seed(seed: int) -> int:
    """The sampling seed of the global evaluation: anything that scores a model on the global
    held-out set (benchmarks included) uses it, so all are scored on the same samples."""
    return seed * 7919 + 17


def _context(model: torch.nn.Module) -> int | None:
    """The base model's context length in tokens (None when its config does not say)."""
    return getattr(model.config, "max_position_embeddings", None)


def _longest_output(cfg: RunConfig) -> int:
    return max(cfg.grpo.sampling.max_new_tokens, cfg.eval.max_new_tokens)


class _InlineExecutor:
    """Same interface as a process pool, for workers = 1 (and for debugging)."""

    def map(self, fn, items):
        return map(fn, items)

    def shutdown(self) -> None:
        pass


class _Clients(Mapping[str, Client]):
    """The parties' own Client objects (gain state, metrics), by name, without building a copy."""

    def __init__(self, parties: LazyMap[Party]) -> None:
        self._parties = parties

    def __getitem__(self, name: str) -> Client:
        return self._parties[name].client

    def __iter__(self) -> Iterator[str]:
        return iter(self._parties)

    def __len__(self) -> int:
        return len(self._parties)


class Federation:
    def __init__(self, cfg: RunConfig, run_dir: Path, on_event: Event | None = None) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.emit = on_event or (lambda kind, info: None)
        self.server_dir = self.run_dir / "server"
        self.model_path = resolve_model_path(cfg.model.path, cfg.model.embedded)
        self.model, self.tok, self.layout = initial_adapter(cfg, self.model_path)
        self.data = build_data(cfg)
        for c in cfg.clients:  # an institution's own file: refuse what the model cannot read, before training
            if c.data:
                own = self.data.clients[c.name]
                check_fits(list(own.train) + list(own.eval), self.tok, _context(self.model), _longest_output(cfg),
                           source=f"clients.{c.name}.data ({c.data})")
        self.eval_is_public = not any(c.data for c in cfg.clients)  # built-in held-out prompts only
        log.info("global held-out set: %s", self.data.describe_global_eval())
        names = [c.name for c in cfg.clients]
        self.client_dp = ClientLevelPlan.build(cfg, self.layout.size + 1)  # None: no client-level noise
        self.backend = make_backend(cfg.secure_sum.backend, cfg.backend_options)
        self.backend.setup(self.run_dir, names)
        # Every institution is a party (party.py); only protocol messages pass between them and the server.
        # A party is built when first needed and a population keeps only a bounded number (population.py).
        self.relay: Relay | None = None  # [pubswap]: the server's relay of sealed responses (exchange.py)
        if cfg.pubswap.enabled:
            self.public = public_set(cfg)
            self.sealing_keys = sealing_keys(cfg, self.run_dir, names)
            self.relay = Relay(cfg, self.server_dir / "pubswap")
        self.parties: LazyMap[Party] = LazyMap(names, self._party, capacity(cfg))
        self.clients = _Clients(self.parties)
        self.server = Server(self.server_dir, cfg, names)
        # The global model lives wherever the sum is revealed (see global_model.py).
        self.keepers = ([self.server_dir] if self.backend.server_learns_sum
                        else [self.run_dir / "clients" / n for n in sorted(names)])
        self.global_model = GlobalModel([k / "checkpoints" for k in self.keepers], cfg.server,
                                        to_vector(self.model, self.layout), upto=self.server.last_completed_round)
        self.coordinator = Coordinator(cfg, self.server, self.global_model, self.client_dp, self.layout.size)
        self.global_metrics = JsonlLog(self.run_dir / "global_metrics.jsonl")
        self.last_scored: list[Scored] = []  # the latest global evaluation, completion by completion
        self.recorder = TranscriptRecorder(self.server_dir / "transcript.jsonl", (self.server_dir / "inbox")
                                           if cfg.audit.archive_payloads else None)
        self.eval_sampling = SamplingSpec(cfg.eval.max_new_tokens, cfg.eval.temperature)
        self._resume()

    def _party(self, name: str) -> Party:
        """Built when first needed (population.py), with its state as of the last completed round."""
        party = Party(self.cfg, name, self.data.clients[name], self.run_dir / "clients" / name, self.backend,
                      client_state_dir(self.run_dir, name), self.client_dp, self.model_path)
        party.resume(self.server.last_completed_round)
        if self.relay is not None:
            party.swap = swap_party(self.cfg, self.run_dir, name, self.sealing_keys, self.public)
        return party

    def _resume(self) -> None:
        last = self.server.last_completed_round
        self.recorder.truncate_after(last)
        self.server.metrics.truncate_after(last)
        self.global_metrics.truncate_after(last)
        if self.relay is not None:
            self.relay.truncate_after(last)
        if self.cfg.population is None:  # a population's clients resume when built
            for c in self.clients.values():
                c.resume(last)
        write_json_atomic(self.run_dir / "global_eval.json", {  # what "global accuracy" was measured on
            "about": self.data.describe_global_eval(), "prompts": len(self.data.global_eval),
            "parts": self.data.global_eval_parts})
        write_json_atomic(self.run_dir / "layout.json", {"names": list(self.layout.names),
                                                         "shapes": [list(s) for s in self.layout.shapes]})

    def evaluate_global(self, round_: int, problems: list[Problem] | None = None) -> float:
        """The global adapter's sampled pass@1 on the global held-out set (or on ``problems``)."""
        return accuracy(self.score_global(problems))

    def score_global(self, problems: list[Problem] | None = None) -> list[Scored]:
        """The global adapter's scored completions on the global held-out set (or on ``problems``)."""
        load_vector(self.model, self.layout, self.global_model.state.vector)
        return score(self.model, self.tok, make_rollout(self.cfg.model.rollout),
                     self.data.global_eval if problems is None else problems, self.eval_sampling,
                     seed=eval_seed(self.cfg.seed))

    def training_prompts(self) -> set[str]:
        """Every prompt some client of this run trains on (to flag recall in a later evaluation)."""
        return {p.prompt for c in self.data.clients.values() for p in c.train}

    def export_adapter(self) -> list[Path]:
        """The global adapter in peft's on-disk format with the base model's tokenizer and location
        (model/export.py: loads with AutoPeftModelForCausalLM/AutoTokenizer), written by whoever holds it."""
        outs = [k / "global_adapter" for k in self.keepers]
        export_global(self.cfg, self.model, self.tok, self.layout, self.global_model.state.vector,
                      self.model_path, outs)
        return outs

    def _executor(self) -> Executor | _InlineExecutor:
        if self.cfg.federation.workers == 1:
            return _InlineExecutor()
        return worker_pool(self.cfg.federation.workers)

    def _jobs(self, round_: int, names: list[str]) -> list[TrainJob]:
        """Stage 0 over the in-process transport: the server opens the round, each party checks
        it against its own config and, if it accepts, hands back its local training job."""
        setup = self.coordinator.open_round(round_, names)
        threads = 1 if self.cfg.federation.workers > 1 else max(1, torch.get_num_threads())
        vector = self.global_model.state.vector
        jobs = []
        for n in names:
            try:
                self.parties[n].accept(setup, vector)
            except Refused as err:
                log.warning("client %s refused round %d: %s", n, round_, err)
                continue
            self._relay(round_, n)
            jobs.append(self.parties[n].job(vector, threads))
        return jobs

    def _relay(self, round_: int, name: str) -> None:
        """[pubswap] stage 0: the server relays the sealed responses addressed to ``name``."""
        swap = self.parties[name].swap
        if self.relay is None or swap is None:
            return
        msg = self.relay.relay(round_, name)
        if msg is not None:
            self.recorder.record(msg)  # the server's outbound relay, for the audit inventory
        swap.receive(round_, msg.payload if msg is not None else None)

    def _seal(self, round_: int, names: list[str], outcomes: dict[str, TrainOutcome]) -> None:
        """[pubswap] each party that trained seals its offers to every other participant; the
        server records and keeps the blobs for the next round's relay."""
        for n, out in outcomes.items():
            swap = self.parties[n].swap
            if self.relay is None or swap is None:
                continue
            msg = swap.seal(round_, out.pubswap.offers if out.pubswap is not None else [], names)
            if msg is not None:
                self.recorder.record(msg)
                self.relay.collect(msg, names)

    def _drops(self, round_: int, names: list[str], stages: tuple[str, ...]) -> DropSchedule:
        p = self.cfg.federation.dropout
        rng = random.Random(derive_seed(self.cfg.seed, "drop", round_))
        sched = DropSchedule()
        for n in names:
            if p > 0 and rng.random() < p:
                sched.drop_before.setdefault(rng.choice(stages), set()).add(n)
        return sched

    def run(self, rounds: int | None = None) -> RunSummary:
        """Run until ``federation.rounds`` (or ``rounds`` more, for tests of resume)."""
        cfg = self.cfg
        done = self.server.last_completed_round
        if done > cfg.federation.rounds:
            raise CheckpointError(f"{self.server_dir / 'state.json'}: says round {done} completed, but "
                                  f"federation.rounds = {cfg.federation.rounds}; nothing to train")
        if done == 0 and not self.global_metrics.rows():
            self._record_global(0, {})
        end = cfg.federation.rounds if rounds is None else min(cfg.federation.rounds, done + rounds)
        executor = self._executor()
        stopped = ""
        try:
            for r in range(done + 1, end + 1):
                stopped = self._privacy_stop(r)
                if stopped:
                    log.warning("stopping before round %d: %s", r, stopped)
                    self.emit("budget_exhausted", {"round": r, "reason": stopped})
                    break
                self._round(r, executor)
        finally:
            executor.shutdown()
        self._evaluate_clients(self.server.last_completed_round)
        self.export_adapter()
        return RunSummary(rounds=self.global_metrics.rows(), stopped=stopped)

    def _evaluate_clients(self, after_round: int) -> None:
        """Each client's held-out accuracy of the final global adapter. A round measures the
        adapter it receives, so without this the last adapter would go unmeasured by the clients;
        the seed is the one round ``after_round + 1`` would use."""
        if after_round == 0:
            return
        load_vector(self.model, self.layout, self.global_model.state.vector)
        rollout = make_rollout(self.cfg.model.rollout)
        # A population: the last round's sample only (1,000 evaluations would dwarf the run).
        names = self.server.participants(after_round) if self.cfg.population is not None else list(self.clients)
        for n in names:
            client = self.clients[n]
            seed = eval_seed_of(derive_seed(self.cfg.seed, "train", n, after_round + 1))
            acc = pass_at_1(self.model, self.tok, rollout, self.data.clients[n].eval, self.eval_sampling, seed=seed)
            write_json_atomic(client.root / FINAL_EVAL, {"after_round": after_round, "eval_accuracy_of_global": acc})

    def _privacy_stop(self, r: int) -> str:
        """Why round r must not run (it would exceed a privacy budget), or ""."""
        if self.client_dp is not None and not self.client_dp.budget.affordable(r):
            return (f"round {r} would exceed the client-level budget epsilon="
                    f"{self.client_dp.cfg.epsilon:g} (spent {self.client_dp.budget.spent(r - 1):.3g})")
        # Each client checks its own example-level budget; only the refusal leaves it.
        if any(not self.clients[n].can_train() for n in self.server.participants(r)):
            return f"round {r} would exceed a participant's example-level budget"
        return ""

    def _round(self, r: int, executor: Executor | _InlineExecutor) -> None:
        names = self.server.participants(r)
        self.emit("round_start", {"round": r, "participants": names})
        if len(names) < MIN_TO_SUM:  # Poisson sampling drew too few: nothing to sum (the round still counts for DP)
            reason = f"{len(names)} client(s) sampled: nothing to sum"
            self.global_model.save(r)
            return self._finish(r, {"round": r, "contributors": 0, "aborted": True, "reason": reason,
                                    **self.coordinator.dp_row(r)}, {})
        outcomes: dict[str, TrainOutcome] = {}
        for out in executor.map(run_training, self._jobs(r, names)):
            outcomes[out.client] = out
            self.emit("client_done", {"round": r, "client": out.client})
        self._seal(r, names, outcomes)
        spec = self.server.sum_spec(r, names, self.layout.size)

        def join(n: str) -> SumClient | None:  # a party that refused stage 0 has no outcome: a dropout
            return self.parties[n].join(outcomes[n]) if n in outcomes else None

        release = release_round(self.client_dp, self.backend, spec, None, self.run_dir, self.recorder,
                                lambda stages: self._drops(r, names, stages), join=join)
        row, known = self.coordinator.close_round(r, release)
        self._finish(r, row, known)

    def _finish(self, r: int, row: dict, known: dict) -> None:
        """Evaluate and record round r (``known``: what the holder of the global model learned)."""
        self._record_global(r, known)
        if self.backend.server_learns_sum:
            row.update(known)
            if self.eval_is_public:  # an accuracy on clients' held-out rows is theirs, not the server's
                row["global_accuracy"] = self.global_metrics.rows()[-1]["global_accuracy"]
        self.server.metrics.append(row)
        self.server.mark_completed(r)
        self.emit("round", {**row, **self.global_metrics.rows()[-1]})

    def _record_global(self, r: int, known: dict) -> None:
        scored = self.last_scored = self.score_global()
        acc = accuracy(scored)
        by_family = {f: {"accuracy": a, "prompts": n} for f, (a, n) in accuracy_by_family(scored).items()}
        self.global_metrics.append({"round": r, "global_accuracy": acc, **known, "by_family": by_family})
        if r == 0:
            self.emit("round", {"round": 0, "global_accuracy": acc, "by_family": by_family})
