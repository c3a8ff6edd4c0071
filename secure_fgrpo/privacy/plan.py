"""A run's privacy plan: noise calibrated from the config, ε after each round, budget checks.

Client level (the server's plan, public parameters only): one Gaussian release per round,
sampled with rate q = k/n, k the participants per round (Server.participants). For k < n this
treats fixed-size sampling as Poisson sampling with the same rate, the usual approximation of
DP federated averaging; with ``federation.fraction = 1`` (q = 1) there is no approximation.

Example level (each client's own plan): ``grpo.steps`` Poisson-subsampled Gaussian steps per
round. ``grpo.mu`` noisy updates on one sample compose into a single Gaussian with noise
multiplier z/sqrt(mu) before subsampling, and that is what is accounted. Noise is calibrated
for a client that takes part in every round; taking part in fewer only spends less.

Every round that reaches the secure sum is counted, aborted or not (conservative).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..secure_sum.base import SumSpec
from .accountant import Budget, noise_for
from .client_dp import ClientNoise, sensitivity, share_std
from .config import ClientLevelConfig, ExampleDPSettings, ExampleLevelConfig, check_records


def participants_per_round(run: Any) -> int:
    """k, as Server.participants draws it."""
    n = len(run.clients)
    return min(n, max(2, round(run.federation.fraction * n)))


class ClientLevelPlan:
    def __init__(self, cfg: ClientLevelConfig, run: Any) -> None:
        self.cfg = cfg
        self.k, n = participants_per_round(run), len(run.clients)
        self.sample_rate = self.k / n
        self.weight_max = min(run.weight_bound, cfg.weight_clip if cfg.weight_clip is not None else math.inf)
        self.delta_clip = run.federation.delta_clip
        self.sensitivity = sensitivity(self.weight_max, self.delta_clip)
        z = cfg.noise_multiplier
        if z is None:
            z = noise_for(cfg.epsilon, cfg.delta, self.sample_rate, run.federation.rounds, cfg.accountant)
        self.noise_multiplier = z
        self.budget = Budget(z, self.sample_rate, 1, cfg.delta, cfg.accountant, cfg.epsilon)

    @classmethod
    def build(cls, run: Any) -> "ClientLevelPlan | None":
        cfg = run.privacy.client_level
        return None if cfg is None else cls(cfg, run)

    @property
    def sigma(self) -> float:
        """Std of the noise the SUM carries on every coordinate."""
        return self.noise_multiplier * self.sensitivity

    def noise(self, spec: SumSpec) -> ClientNoise:
        """This round's public noise parameters (the spec gives the dimension and threshold t)."""
        if len(spec.participants) != self.k:
            raise RuntimeError(f"round {spec.round}: {len(spec.participants)} participants, the privacy "
                               f"plan was calibrated for {self.k}")
        std = share_std(self.sigma, self.cfg.mechanism, spec.threshold)
        return ClientNoise.for_round(std, self.weight_max, self.delta_clip, spec.dim)

    def finish_sum(self, noise: ClientNoise, total: np.ndarray, contributors: int) -> np.ndarray:
        """Remove the weight offsets and floor the noised sum of weights at σ: below one noise
        std the denominator carries no signal, and dividing by a value near 0 would blow the
        data noise up without bound (post-processing of public values: free of privacy cost)."""
        out = noise.remove_offset(total, contributors)
        out[-1] = max(float(out[-1]), self.sigma)
        return out

    def row(self, rounds_done: int) -> dict[str, float]:
        """What goes into server/metrics.jsonl after ``rounds_done`` rounds."""
        return {"dp_client_epsilon": self.budget.spent(rounds_done), "dp_client_delta": self.cfg.delta,
                "dp_client_noise_multiplier": self.noise_multiplier, "dp_client_sigma": self.sigma}


class ExampleLevelPlan:
    def __init__(self, cfg: ExampleLevelConfig, run: Any, pool_size: int, client: str) -> None:
        check_records("privacy.example_level.delta", cfg.delta, pool_size,
                      f"client {client!r} has {pool_size} training records")
        self.cfg = cfg
        grpo = run.grpo
        q = cfg.sample_rate if cfg.sample_rate is not None else min(1.0, grpo.oversample / pool_size)
        root_mu = math.sqrt(grpo.mu)
        if cfg.noise_multiplier is not None:
            z = cfg.noise_multiplier
        else:
            z = noise_for(cfg.epsilon, cfg.delta, q, run.federation.rounds * grpo.steps, cfg.accountant) * root_mu
        self.settings = ExampleDPSettings(noise_multiplier=z, max_grad_norm=cfg.max_grad_norm, sample_rate=q)
        self.budget = Budget(z / root_mu, q, grpo.steps, cfg.delta, cfg.accountant, cfg.epsilon)

    @classmethod
    def build(cls, run: Any, pool_size: int, client: str) -> "ExampleLevelPlan | None":
        cfg = run.privacy.example_level
        return None if cfg is None else cls(cfg, run, pool_size, client)

    def row(self, rounds_done: int) -> dict[str, float]:
        """What goes into the client's own metrics.jsonl after ``rounds_done`` of its rounds."""
        return {"dp_example_epsilon": self.budget.spent(rounds_done), "dp_example_delta": self.cfg.delta,
                "dp_example_noise_multiplier": self.settings.noise_multiplier,
                "dp_example_sample_rate": self.settings.sample_rate}
