"""One institution as a party: it owns its data, its gain state and DP budget (client.py), its
local GRPO job (local.py), its share of the client-level noise, and its secure-sum client.
Only protocol messages leave it.

A round, from the party's side: ``accept`` stage 0 (the round's public parameters, checked
against its own config and policy before anything is revealed) -> ``job`` (local GRPO, picklable
so it may run in a worker process) -> ``join`` (gain -> e_i, L2 clip, noise, the secure-sum
client holding ``[e·Δ, e]``). The same object runs in process (runner.py) and in a SuperNode
(flower/client_app.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import RunConfig
from ..data.partition import ClientData
from ..privacy.client_dp import ClientNoise, SkellamNoise
from ..rollout import SamplingSpec
from ..rounds import sum_bounds, threshold_for
from ..secure_sum.base import Backend, SumClient, SumSpec
from ..seeding import derive_seed
from .client import Client
from .exchange import SwapParty
from .local import TrainJob, TrainOutcome
from .setup import RoundSetup, config_digest, noise_public, vector_digest

log = logging.getLogger(__name__)
Noise = ClientNoise | SkellamNoise


class NoisePlan(Protocol):
    """privacy/plan.py ``ClientLevelPlan`` / ``SkellamPlan``: public, built from the config."""

    def noise(self, spec: SumSpec) -> Noise: ...


class Refused(ValueError):
    """Stage 0 broke this party's own config or policy; the message names the field."""


class Party:
    def __init__(self, cfg: RunConfig, name: str, data: ClientData, root: Path, backend: Backend,
                 sum_state_dir: Path, plan: NoisePlan | None, model_path: str) -> None:
        own = next((c for c in cfg.clients if c.name == name), None)
        if own is None:
            raise Refused(f"clients: {name!r} is not in the federation config")
        self.cfg, self.name, self.data, self.backend, self.plan = cfg, name, data, backend, plan
        self.sum_state_dir, self.model_path = sum_state_dir, model_path
        self.client = Client(own, data, root, cfg)
        self.config_digest = config_digest(cfg)
        self._setup: RoundSetup | None = None
        self._noise: Noise | None = None
        self.swap: SwapParty | None = None  # [pubswap]: set by the transport that relays (runner.py)

    # --- the party's own state ------------------------------------------------------------

    def resume(self, last_round: int) -> None:
        self.client.resume(last_round)

    def can_train(self) -> bool:
        """False when one more round would exceed this party's example-level DP budget."""
        return self.client.can_train()

    # --- stage 0 ----------------------------------------------------------------------------

    def accept(self, setup: RoundSetup, global_vector: np.ndarray) -> None:
        """Check the round's public parameters against this party's own config before it
        trains or reveals anything; raise :class:`Refused` naming the field."""
        cfg, spec = self.cfg, setup.spec
        if setup.config_digest != self.config_digest:
            raise Refused("setup.config_digest: the server's federation config differs from this party's")
        if setup.backend != cfg.secure_sum.backend:
            raise Refused(f"setup.backend: {setup.backend!r}, this party's config says {cfg.secure_sum.backend!r}")
        if self.name not in spec.participants:
            raise Refused(f"setup.spec.participants: {self.name!r} is not listed")
        if vector_digest(global_vector) != setup.global_digest or global_vector.size + 1 != spec.dim:
            raise Refused("setup.global_digest: the global vector does not match it")
        if spec.round <= setup.model_version:
            raise Refused(f"setup.model_version: {setup.model_version} is not before round {spec.round}")
        data_bound, weight_bound = sum_bounds(cfg)
        if (spec.data_bound, spec.weight_bound) != (data_bound, weight_bound):
            raise Refused("setup.spec.data_bound/weight_bound: not the box this party's config gives")
        if spec.threshold < threshold_for(cfg, len(spec.participants)):
            raise Refused(f"setup.spec.threshold: {spec.threshold} is below this party's "
                          f"{threshold_for(cfg, len(spec.participants))}")
        noise = self.plan.noise(spec) if self.plan is not None else None
        if (noise_public(noise) if noise is not None else None) != setup.noise:
            raise Refused("setup.noise: not the client-level noise this party's privacy plan gives")
        if not self.can_train():
            raise Refused("this party's example-level DP budget does not afford another round")
        self._setup, self._noise = setup, noise

    # --- local training -----------------------------------------------------------------------

    def job(self, global_vector: np.ndarray, threads: int) -> TrainJob:
        """The accepted round's local GRPO, runnable in a worker process (local.run_training)."""
        setup = self._accepted()
        cfg, r = self.cfg, setup.spec.round
        plan = self.client.example_dp
        return TrainJob(client=self.name, round=r, model_path=self.model_path, rollout=cfg.model.rollout,
                        lora=cfg.model.lora, global_vector=global_vector, pool=self.data.train,
                        eval_set=self.data.eval, reward=self.client.cfg.reward, grpo=cfg.grpo,
                        eval_sampling=SamplingSpec(cfg.eval.max_new_tokens, cfg.eval.temperature),
                        seed=derive_seed(cfg.seed, "train", self.name, r),
                        threads=threads, dp=plan.settings if plan else None, device=cfg.model.device,
                        pubswap=self.swap.job(r) if self.swap is not None else None)

    # --- the secure sum -------------------------------------------------------------------------

    def join(self, outcome: TrainOutcome) -> SumClient:
        """Gain -> e_i, clip, this party's noise, and its secure-sum client holding the result."""
        setup, noise = self._accepted(), self._noise
        spec = noise.widen(setup.spec) if noise is not None else setup.spec
        vector = self.client.prepare_input(spec.round, outcome, self.backend.weights_on_server, noise).vector
        in_backend = {"noise": noise} if isinstance(noise, SkellamNoise) else {}
        sc = self.backend.client(self.name, spec, self.sum_state_dir, **in_backend)
        sc.set_input(vector)
        self._setup = self._noise = None  # one contribution per accepted round
        return sc

    def _accepted(self) -> RoundSetup:
        if self._setup is None:
            raise RuntimeError(f"party {self.name}: no accepted round (stage 0 comes first)")
        return self._setup
