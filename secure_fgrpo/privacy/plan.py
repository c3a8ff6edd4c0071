"""A run's privacy plan: noise calibrated from the config, ε after each round, budget checks.

Client level (the server's plan, public parameters only): one Gaussian release per round at
sampling rate q. With ``federation.sampling = "poisson"`` each client takes part independently
with probability q = ``fraction``: the sampling the accountants' (RDP, PRV) amplification
assumes is the one run. With ``"fixed"`` (k = round(q·n) a round) q = k/n is treated as Poisson,
the usual approximation of DP federated averaging; with ``fraction = 1`` there is none.
Amplification holds against whoever sees only the released sums and models, not who was
sampled. The coordinating server sees each round's roster, so against it a client's loss is the
unamplified mechanism composed over the rounds it took part in: ``row`` reports that too
(``dp_client_epsilon_roster_known``, the most-sampled client).

Example level (each client's own plan): ``grpo.steps`` Poisson-subsampled Gaussian steps per
round. ``grpo.mu`` noisy updates on one sample compose into a single Gaussian with noise
multiplier z/sqrt(mu) before subsampling, and that is what is accounted. Noise is calibrated
for a client that takes part in every round; taking part in fewer only spends less.

Every round that reaches the secure sum is counted, aborted or not (conservative).

Client level with ``mechanism = "skellam"`` (:class:`SkellamPlan`): integer noise in the masked
backend's words. The fixed-point scale γ is the finest at which no sum can wrap (or
``secure_sum.options.scale``), μ is calibrated at that γ from the target ε with the Skellam RDP
bound (or from ``noise_multiplier`` as σ/Δ2: 2μ = (z·Δ2)²), and each client adds Sk(μ/t), t the
threshold. Every round counts as a full release: no amplification by client sampling. Why
(a stated conservative bound): the amplification the accountants compute is for the subsampled
*Gaussian*; the Skellam RDP bound (Agarwal et al. 2021) has no subsampled counterpart in Opacus,
and a generic RDP subsampling bound was not implemented. Under Poisson sampling the count k of a
round varies, so the scale γ and the shares μ/t are calibrated per k (same μ-per-Δ2 target,
so the same ε per round) and cached.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..configio import ConfigError
from ..gain import uses_rewards
from ..rounds import participants_per_round, threshold_for
from ..secure_sum.base import SumSpec
from ..secure_sum.masked import max_quantum
from . import skellam
from .accountant import Budget, epsilon, noise_for
from .client_dp import ClientNoise, SkellamNoise, sensitivity, share_std
from .config import ClientLevelConfig, ExampleDPSettings, ExampleLevelConfig, check_records, target_epsilon


def sample_rate(run: Any) -> float:
    """q of the client-level accountant: the Poisson rate, or k/n for a fixed-size sample."""
    if run.federation.sampling == "poisson":
        return float(run.federation.fraction)
    return participants_per_round(run) / len(run.clients)


class ClientLevelPlan:
    def __init__(self, cfg: ClientLevelConfig, run: Any) -> None:
        self.cfg = cfg
        self.k, self.sample_rate = participants_per_round(run), sample_rate(run)
        self.poisson = run.federation.sampling == "poisson"
        self.weight_max = min(run.weight_bound, cfg.weight_clip if cfg.weight_clip is not None else math.inf)
        self.delta_clip = run.federation.delta_clip
        self.sensitivity = sensitivity(self.weight_max, self.delta_clip)
        z = cfg.noise_multiplier
        if z is None:
            z = noise_for(target_epsilon(cfg), cfg.delta, self.sample_rate, run.federation.rounds, cfg.accountant)
        self.noise_multiplier = z
        self.budget = Budget(z, self.sample_rate, 1, cfg.delta, cfg.accountant, cfg.epsilon)

    @classmethod
    def build(cls, run: Any, dim: int | None = None) -> ClientLevelPlan | SkellamPlan | None:
        """``dim``: the summed vector's length (adapter size + 1), which Skellam needs."""
        cfg = run.privacy.client_level
        if cfg is None:
            return None
        if cfg.mechanism == "skellam":
            if dim is None:
                raise ValueError("a Skellam plan needs the vector dimension")
            return SkellamPlan(cfg, run, dim)
        return cls(cfg, run)

    @property
    def sigma(self) -> float:
        """Std of the noise the SUM carries on every coordinate."""
        return self.noise_multiplier * self.sensitivity

    def noise(self, spec: SumSpec) -> ClientNoise:
        """This round's public noise parameters (the spec gives the dimension and threshold t)."""
        if not self.poisson and len(spec.participants) != self.k:
            raise RuntimeError(f"round {spec.round}: {len(spec.participants)} participants, the privacy "
                               f"plan was calibrated for {self.k}")
        std = share_std(self.sigma, self.cfg.mechanism, spec.threshold)
        return ClientNoise.for_round(std, self.weight_max, self.delta_clip, spec.dim)

    def finish_sum(self, noise: ClientNoise | SkellamNoise, total: np.ndarray, contributors: int) -> np.ndarray:
        """Remove the weight offsets and floor the noised sum of weights at σ: below one noise
        std the denominator carries no signal, and dividing by a value near 0 would blow the
        data noise up without bound (post-processing of public values: free of privacy cost)."""
        out = noise.remove_offset(total, contributors)
        out[-1] = max(float(out[-1]), self.sigma)
        return out

    def row(self, rounds_done: int, most_sampled: int | None = None) -> dict[str, float]:
        """What goes into server/metrics.jsonl after ``rounds_done`` rounds; ``most_sampled``: the
        most rounds one client took part in (Server.most_rounds_sampled), for the roster-known ε."""
        out = {"dp_client_epsilon": self.budget.spent(rounds_done), "dp_client_delta": self.cfg.delta,
               "dp_client_noise_multiplier": self.noise_multiplier, "dp_client_sigma": self.sigma,
               "dp_client_sample_rate": self.sample_rate}
        if most_sampled is not None:
            out["dp_client_epsilon_roster_known"] = epsilon([(self.noise_multiplier, 1.0, most_sampled)],
                                                            self.cfg.delta, self.cfg.accountant)
        return out


class SkellamPlan:
    """Client-level Skellam noise for the masked backend (module docstring); the same interface
    as ClientLevelPlan. ``sigma`` is the std of the sum's noise in float units, sqrt(2μ)/γ."""

    def __init__(self, cfg: ClientLevelConfig, run: Any, dim: int) -> None:
        self.cfg, self.dim, self.run = cfg, dim, run
        self.k = participants_per_round(run)
        self.t = threshold_for(run, self.k)
        self.poisson = run.federation.sampling == "poisson"
        self.weight_max = min(run.weight_bound, cfg.weight_clip if cfg.weight_clip is not None else math.inf)
        self.delta_clip = run.federation.delta_clip
        self.sensitivity = sensitivity(self.weight_max, self.delta_clip)
        self._by_k: dict[int, tuple[skellam.Calibration, SkellamNoise]] = {}
        self.calibration, self._noise = self._calibrated(self.k)  # the expected k: refuses a bad config now
        self.noise_multiplier = self.sigma / self.sensitivity  # the Gaussian-equivalent z
        cal = self.calibration
        self.budget = skellam.SkellamBudget(cal.mu, cal.l2, cal.l1, cfg.delta, cfg.epsilon)

    def _calibrated(self, k: int) -> tuple[skellam.Calibration, SkellamNoise]:
        if k in self._by_k:
            return self._by_k[k]
        cfg, run = self.cfg, self.run
        options = run.secure_sum.options
        bits, scale = options.get("modulus_bits", 32), options.get("scale")
        z, rounds = cfg.noise_multiplier, run.federation.rounds

        def mu_for(l2: float, l1: float) -> float:
            if z is not None:
                return (z * l2) ** 2 / 2.0
            return skellam.mu_for_epsilon(target_epsilon(cfg), cfg.delta, l2, l1, rounds)

        try:
            cal = skellam.calibrate(self.sensitivity, self.dim, threshold_for(run, k), max_quantum(k, bits), mu_for,
                                    scale)
        except ValueError as err:
            key = "secure_sum.options.scale" if scale is not None else "secure_sum.options.modulus_bits"
            hint = "lower the scale or use" if scale is not None else "use"
            raise ConfigError(key, f"privacy.client_level.mechanism = 'skellam' with {k} participants "
                              f"in {bits}-bit words: {err}; {hint} secure_sum.options.modulus_bits = 64, "
                              "fewer participants per round or a larger privacy.client_level.epsilon") from None
        noise = SkellamNoise(scale=cal.scale, share=cal.share, l2_bound=cal.l2, word_bound=cal.word_bound,
                             weight_max=self.weight_max, delta_clip=self.delta_clip)
        self._by_k[k] = (cal, noise)
        return cal, noise

    @property
    def sigma(self) -> float:
        return math.sqrt(2.0 * self.calibration.mu) / self.calibration.scale

    def noise(self, spec: SumSpec) -> SkellamNoise:
        """The round's public noise parameters; refuses a round other than the one calibrated
        (under Poisson sampling: calibrated for this round's count)."""
        got = (len(spec.participants), spec.threshold, spec.dim)
        if self.poisson and spec.dim == self.dim and spec.threshold == threshold_for(self.run, got[0]):
            return self._calibrated(got[0])[1]
        if got != (self.k, self.t, self.dim):
            raise RuntimeError(f"round {spec.round}: (participants, threshold, dim) = {got}, the Skellam "
                               f"plan was calibrated for {(self.k, self.t, self.dim)}")
        return self._noise

    def finish_sum(self, noise: ClientNoise | SkellamNoise, total: np.ndarray, contributors: int) -> np.ndarray:
        """Floor the noised sum of weights at σ, as ClientLevelPlan.finish_sum does."""
        out = noise.remove_offset(total, contributors)
        out[-1] = max(float(out[-1]), self.sigma)
        return out

    def row(self, rounds_done: int, most_sampled: int | None = None) -> dict[str, float]:
        """As ClientLevelPlan.row; no amplification, so the roster-known ε is at most this one."""
        c = self.calibration
        extra = {} if most_sampled is None else {"dp_client_epsilon_roster_known": self.budget.spent(most_sampled)}
        return {**extra, "dp_client_epsilon": self.budget.spent(rounds_done), "dp_client_delta": self.cfg.delta,
                "dp_client_noise_multiplier": self.noise_multiplier, "dp_client_sigma": self.sigma,
                "dp_client_skellam_mu": c.mu, "dp_client_scale": c.scale}


class ExampleLevelPlan:
    def __init__(self, cfg: ExampleLevelConfig, run: Any, pool_size: int, client: str) -> None:
        check_records("privacy.example_level.delta", cfg.delta, pool_size,
                      f"client {client!r} has {pool_size} training records")
        self.cfg = cfg
        grpo = run.grpo
        q = cfg.sample_rate if cfg.sample_rate is not None else min(1.0, grpo.oversample / pool_size)
        # One step releases mu noisy gradient sums (sensitivity C each, noise z·C) and, when the
        # weights need them, two sums of per-record reward moments in [0, 1] (sensitivity √2 together,
        # noise z·k each): one Gaussian mechanism whose multiplier is z / sqrt(mu + 2/k²).
        k = cfg.reward_noise_ratio
        self.releases_rewards = uses_rewards(run.federation.strategy)
        factor = math.sqrt(grpo.mu + (2.0 / k**2 if self.releases_rewards else 0.0))
        if cfg.noise_multiplier is not None:
            z = cfg.noise_multiplier
        else:
            steps = run.federation.rounds * grpo.steps
            z = noise_for(target_epsilon(cfg), cfg.delta, q, steps, cfg.accountant) * factor
        # Rewards lie in [0, scale] (tasks/base.py RewardSpec); the bound never changes ε, so a
        # plan built for the config alone (the audit's "(config)") takes 1.
        bound = next((c.reward.scale for c in run.clients if c.name == client), 1.0)
        self.settings = ExampleDPSettings(noise_multiplier=z, max_grad_norm=cfg.max_grad_norm, sample_rate=q,
                                          reward_noise=z * k if self.releases_rewards else None, reward_bound=bound)
        self.budget = Budget(z / factor, q, grpo.steps, cfg.delta, cfg.accountant, cfg.epsilon)

    @classmethod
    def build(cls, run: Any, pool_size: int, client: str) -> ExampleLevelPlan | None:
        cfg = run.privacy.example_level
        return None if cfg is None else cls(cfg, run, pool_size, client)

    def row(self, rounds_done: int) -> dict[str, float]:
        """What goes into the client's own metrics.jsonl after ``rounds_done`` of its rounds."""
        return {"dp_example_epsilon": self.budget.spent(rounds_done), "dp_example_delta": self.cfg.delta,
                "dp_example_noise_multiplier": self.settings.noise_multiplier,
                "dp_example_sample_rate": self.settings.sample_rate}
