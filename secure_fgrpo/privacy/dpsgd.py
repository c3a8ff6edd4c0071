"""Example-level DP-SGD for local GRPO, through Opacus.

One record is one prompt with its whole group of G completions (one patient record), so the
unit Opacus clips must be the group, not the completion row. Opacus' GradSampleModule gives
per-row gradients of the LoRA parameters (the only trainable ones); the G rows of each group are
summed into one per-group gradient, which Opacus' DPOptimizer clips to C, sums, noises and
averages over the expected batch q·N. The loss is a sum of per-group losses, each normalised
within its own group, so no record's gradient depends on another record (the whole-batch token
normalisation of dapo would couple them). Prompts are Poisson-sampled with rate q, and a step
with no informative group still adds its noise: whether a step happened must not depend on data.

Noise and sampling use :class:`SecureRandom` (secret, not seeded).

``make_private`` wraps the local loop's plain steps (grpo/trainer.py's LocalSteps) the way
Opacus' ``make_private`` wraps an optimizer: the loop runs the private steps unchanged.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import warnings
from collections.abc import Sequence
from typing import TypeVar

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed

from ..grpo.loss import LossConfig, LossOutput, policy_loss
from ..grpo.trainer import LocalSteps, RoundResult, _private_result
from ..tasks.base import Problem
from .config import ExampleDPSettings
from .noise import SecureRandom

T = TypeVar("T")
log = logging.getLogger(__name__)


class _SecureNoiseDPOptimizer(DPOptimizer):
    """Opacus' DPOptimizer with its Gaussian noise drawn from a cryptographic stream."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, source: SecureRandom, **kwargs: object) -> None:
        super().__init__(optimizer, **kwargs)
        self._source = source

    def add_noise(self) -> None:
        std = self.noise_multiplier * self.max_grad_norm
        for p in self.params:
            _check_processed_flag(p.summed_grad)
            p.grad = (p.summed_grad + self._source.normal_like(p.summed_grad, std)).view_as(p)
            _mark_as_processed(p.summed_grad)


class GroupDPSGD:
    """Per-group clipped, noised optimizer steps on a peft model's trainable parameters.

    Use: ``sample(pool)`` the step's prompts; ``step(...)`` per policy-gradient iteration, or
    ``empty_step()`` when no group survived; ``close()`` at the end (removes Opacus' hooks)."""

    def __init__(self, settings: ExampleDPSettings, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, pool_size: int, source: SecureRandom | None = None) -> None:
        if pool_size < 1:
            raise ValueError("example-level DP needs a non-empty prompt pool")
        self.settings = settings
        self.random = source or SecureRandom()
        self.params = [p for p in model.parameters() if p.requires_grad]
        # Hooks on every trainable submodule: forward calls on ``model`` itself record activations.
        self.module = GradSampleModule(model, batch_first=True, loss_reduction="sum")
        self.optimizer = _SecureNoiseDPOptimizer(
            optimizer, source=self.random, noise_multiplier=settings.noise_multiplier,
            max_grad_norm=settings.max_grad_norm, expected_batch_size=settings.sample_rate * pool_size,
            loss_reduction="mean")
        self.noisy_steps = 0
        self.released = (0.0, 0.0)  # running totals of release_moments over this engine's steps

    def sample(self, pool: Sequence[T]) -> list[T]:
        """Poisson sampling: each prompt independently with probability q (secret coins)."""
        keep = self.random.bernoulli(len(pool), self.settings.sample_rate)
        return [p for p, k in zip(pool, keep, strict=True) if k]

    def step(self, logps: torch.Tensor, old_logps: torch.Tensor | None, advantages: torch.Tensor,
             mask: torch.Tensor, cfg: LossConfig, ref_logps: torch.Tensor | None, group_size: int) -> LossOutput:
        """Backpropagate the sum of per-group losses, clip per group, noise, and step."""
        n = logps.shape[0]
        if n == 0 or n % group_size:
            raise ValueError(f"{n} rows is not a positive multiple of group_size={group_size}")
        old = logps.detach() if old_logps is None else old_logps
        loss = functools.reduce(operator.add, (group_loss(logps, old, advantages, mask, cfg, ref_logps, k, group_size)
                                                for k in range(n // group_size)))
        with torch.no_grad():  # the usual whole-batch diagnostics; no gradient flows from them
            report = policy_loss(logps.detach(), old, advantages, mask, cfg, ref_logps)
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # torch notes that token ids carry no gradient: expected
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()
        self._per_group(group_size)
        self.optimizer.step()
        self.noisy_steps += 1
        groups = n // group_size  # reported per group, comparable with the non-private mean loss
        return LossOutput(loss=loss.detach() / groups, metrics={**report.metrics, "dp_groups": float(groups)})

    def release_moments(self, first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
        """Noisy sums of this step's per-record reward moments (each in [0, 1]; see
        record_moments), released with the step's gradient as one mechanism (privacy/plan.py)."""
        std = self.settings.reward_noise
        if std is None:
            raise RuntimeError("this plan releases no reward statistic: only FGRPO's weights read rewards")
        if any(not 0.0 <= x <= 1.0 for x in (*first, *second)):
            raise ValueError("reward moments must be clipped to [0, 1] before release")
        noise = self.random.normal(2, std)
        out = float(sum(first) + noise[0]), float(sum(second) + noise[1])
        self.released = (self.released[0] + out[0], self.released[1] + out[1])
        return out

    def empty_step(self) -> None:
        """A step with no record in it: pure noise, taken so the step count does not leak."""
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.params:
            p.grad_sample = p.new_zeros((0, *p.shape))  # type: ignore[attr-defined]  # Opacus' attribute
        self.optimizer.step()
        self.noisy_steps += 1

    def _per_group(self, g: int) -> None:
        for p in self.params:
            gs = p.grad_sample  # type: ignore[attr-defined]  # Opacus' attribute
            if isinstance(gs, list):  # several forward passes before one backward: not our loop
                raise RuntimeError("one forward pass per DP step expected")
            p.grad_sample = gs.view(gs.shape[0] // g, g, *gs.shape[1:]).sum(dim=1)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.module.cleanup()  # removes the hooks and Opacus' attributes
        for p in self.params:
            for attr in ("grad_sample", "summed_grad"):
                if hasattr(p, attr):
                    delattr(p, attr)


def group_loss(logps: torch.Tensor, old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
               cfg: LossConfig, ref: torch.Tensor | None, k: int, g: int) -> torch.Tensor:
    """Group k's loss on its own rows only (its token normalisation sees no other record)."""
    rows = slice(k * g, (k + 1) * g)
    return policy_loss(logps[rows], old[rows], advantages[rows], mask[rows], cfg,
                       None if ref is None else ref[rows]).loss


def record_moments(rewards: torch.Tensor, g: int, bound: float) -> tuple[list[float], list[float]]:
    """Per record (group of g completions): the mean of its rewards clipped to [0, bound] and
    scaled to [0, 1], and the mean of their squares — each record's whole, bounded contribution."""
    x = (rewards.reshape(rewards.numel() // g, g).double() / bound).clamp(0.0, 1.0)
    return x.mean(dim=1).tolist(), (x * x).mean(dim=1).tolist()


class PrivateSteps(LocalSteps):
    """The local loop's steps under example-level DP-SGD (one record = one prompt's group)."""

    shares_prefix_in_loss = False  # Opacus records per-sample gradients from one row per completion

    def __init__(self, steps: LocalSteps, settings: ExampleDPSettings, pool_size: int,
                 source: SecureRandom | None = None) -> None:
        super().__init__(steps.model, steps.optimizer, steps.cfg, steps.rng)
        self.settings, self.pool_size = settings, pool_size
        self.engine = GroupDPSGD(settings, steps.model, steps.optimizer, pool_size, source)

    def sample(self, pool: list[Problem]) -> list[Problem]:
        return self.engine.sample(pool)

    def trim(self, keep: list[int]) -> list[int]:
        return keep  # a cap would make one record's presence depend on the others

    def observe(self, rewards: torch.Tensor, group_size: int) -> None:
        if self.settings.reward_noise is not None:  # FGRPO's weights need the reward statistics
            self.engine.release_moments(*record_moments(rewards, group_size, self.settings.reward_bound))

    def skip(self) -> None:
        self.engine.empty_step()  # whether a step happened must not depend on the data

    def update(self, logps: torch.Tensor, old: torch.Tensor | None, adv: torch.Tensor, mask: torch.Tensor,
               ref: torch.Tensor | None, group_size: int) -> LossOutput:
        return self.engine.step(logps, old, adv, mask, self.cfg.loss, ref, group_size)

    def finish(self, rewards: list[float], groups: int, steps: list[dict[str, float]]) -> RoundResult:
        """n_i is the public expected batch, never the data-dependent count of trained groups."""
        self.engine.close()
        dp, expected = self.settings, self.cfg.steps * self.settings.sample_rate * self.pool_size
        if dp.reward_noise is not None:
            noise_sd = math.sqrt(self.cfg.steps) * dp.reward_noise / expected  # of the mean, in [0, 1] units
            return _private_result(self.engine.released, expected, noise_sd, dp.reward_bound, steps)
        # Weights that read no reward ('uniform', 'fedavg'): the local statistics stay in the client's own log.
        t = torch.tensor(rewards)
        return RoundResult(mean_reward=t.mean().item() if len(t) else 0.0,
                           reward_std=t.std().item() if len(t) > 1 else 0.0, groups=round(expected), steps=steps)


def make_private(steps: LocalSteps, settings: ExampleDPSettings, pool_size: int,
                 source: SecureRandom | None = None) -> PrivateSteps:
    """The private version of a round's plain steps (same model and optimizer, Opacus-wrapped)."""
    if steps.cfg.shared_prefix:
        log.info("grpo.shared_prefix: the loss pass runs the plain forward under DP-SGD (Opacus records "
                 "per-sample gradients from one forward with one row per completion); the no-grad "
                 "log-prob passes still share the prefix")
    return PrivateSteps(steps, settings, pool_size, source)
