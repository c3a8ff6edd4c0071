"""Local GRPO on a LoRA adapter: one round of a client's training, readable in one sitting.

Per step: sample prompts, roll out a group of completions each, score them with the client's
verifiable reward, keep the groups whose rewards differ (the others carry no signal), compute
group advantages, and take ``mu`` policy-gradient steps against the stored old log-probs.
Under NGRPO advantages the groups wrong throughout carry signal too and are kept; only those at
the maximum reward throughout are dropped.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from ..rollout.base import RolloutBackend, RolloutBatch, SamplingSpec
from ..tasks.base import Problem
from .advantages import ScaleRewards, group_advantages, informative_groups, ngrpo_advantages, ngrpo_trainable_groups
from .logprobs import completion_logprobs
from .loss import LossConfig, LossOutput, policy_loss

log = logging.getLogger(__name__)
RewardFn = Callable[[Problem, str, bool], float]
Advantage = Literal["grpo", "ngrpo"]


@dataclass(frozen=True)
class GRPOConfig:
    steps: int = 8  # local steps per round
    group_size: int = 8
    prompts_per_step: int = 16  # groups trained on per step (at most)
    oversample: int = 24  # prompts rolled out per step, to find informative groups
    filter_informative: bool = True
    lr: float = 2e-3
    mu: int = 1  # policy-gradient iterations per rollout batch
    max_grad_norm: float = 1.0
    scale_rewards: ScaleRewards = "group"
    advantage: Advantage = "grpo"  # "ngrpo": virtual max-reward sample, all-wrong groups kept
    # Run each group's prompt once in the log-prob and loss passes (grpo/prefix.py); under
    # DP-SGD the loss pass stays plain (Opacus needs one forward with one row per completion).
    shared_prefix: bool = True
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        for key in ("steps", "group_size", "prompts_per_step", "oversample", "mu"):
            if getattr(self, key) < 1:
                raise ValueError(f"grpo.{key} must be >= 1, got {getattr(self, key)}")
        if self.group_size < 2:
            raise ValueError("grpo.group_size must be >= 2: advantages compare completions within a group")
        if self.oversample < self.prompts_per_step:
            raise ValueError("grpo.oversample must be >= grpo.prompts_per_step")
        if not self.lr > 0:
            raise ValueError(f"grpo.lr must be > 0, got {self.lr}")
        if self.advantage == "ngrpo":
            if self.scale_rewards == "batch":
                raise ValueError("grpo.scale_rewards = 'batch' has no NGRPO form (the virtual sample is "
                                 "per group): use 'group' or 'none' with grpo.advantage = 'ngrpo'")
            if not self.loss.epsilon_low < self.loss.epsilon_high:
                raise ValueError("grpo.advantage = 'ngrpo' needs asymmetric clipping, grpo.loss.epsilon_low < "
                                 "grpo.loss.epsilon_high (the paper: 0.16 / 0.24): the all-wrong groups' "
                                 f"push is held tighter; got {self.loss.epsilon_low} / {self.loss.epsilon_high}")


@dataclass
class RoundResult:
    """What a client's local round produced, kept at the client."""

    mean_reward: float  # r_i^t: mean reward over every rollout of the round
    reward_std: float  # spread of those rewards (sets the first gain's scale)
    # Groups trained on: the informative ones (all, with filter_informative = false), at most
    # steps x prompts_per_step; under DP-SGD the public expected number of sampled groups.
    groups: int
    steps: list[dict[str, float]]


def select_groups(batch: RolloutBatch, keep_groups: list[int], g: int) -> RolloutBatch:
    """The rows of the groups ``keep_groups`` (each ``g`` completions of one prompt)."""
    rows = torch.tensor([i * g + j for i in keep_groups for j in range(g)], device=batch.sequences.device)
    return RolloutBatch(
        sequences=batch.sequences[rows], attention_mask=batch.attention_mask[rows],
        completion_mask=batch.completion_mask[rows], prompt_len=batch.prompt_len,
        texts=[batch.texts[r] for r in rows.tolist()], finished=[batch.finished[r] for r in rows.tolist()],
    )


class MakesPrivate(Protocol):
    """Example-level DP as a wrapper (privacy/config.py's ExampleDPSettings): it takes the loop's
    plain steps and hands back private ones, the way Opacus' make_private wraps an optimizer."""

    def make_private(self, steps: LocalSteps, pool_size: int) -> LocalSteps: ...


class LocalSteps:
    """The plain way a round samples its prompts, updates the adapter and reports itself.

    ``train_round`` is written against these methods only; privacy/dpsgd.py's PrivateSteps
    overrides them (Poisson sampling, per-group clipping and noise, noisy reward moments), so the
    loop itself has no DP branch."""

    shares_prefix_in_loss = True  # the loss pass may run each group's prompt once (grpo/prefix.py)

    def __init__(self, model: PeftModel, optimizer: torch.optim.Optimizer, cfg: GRPOConfig,
                 rng: random.Random) -> None:
        self.model, self.optimizer, self.cfg, self.rng = model, optimizer, cfg, rng
        self.params = [p for p in model.parameters() if p.requires_grad]

    def sample(self, pool: list[Problem]) -> list[Problem]:
        """The step's prompts: ``oversample`` of them, to find informative groups."""
        return self.rng.sample(pool, min(self.cfg.oversample, len(pool)))

    def trim(self, keep: list[int]) -> list[int]:
        """The trainable groups actually trained on: at most ``prompts_per_step``."""
        return keep[: self.cfg.prompts_per_step]

    def observe(self, rewards: torch.Tensor, group_size: int) -> None:
        """Every sampled group's rewards, trained on or not (nothing to do here)."""

    def skip(self) -> None:
        """A policy-gradient iteration with no group to learn from (nothing to do here)."""

    def update(self, logps: torch.Tensor, old: torch.Tensor | None, adv: torch.Tensor, mask: torch.Tensor,
               ref: torch.Tensor | None, group_size: int) -> LossOutput:
        """One policy-gradient iteration: loss, backward, global-norm clip, optimizer step."""
        out = policy_loss(logps, old if old is not None else logps.detach(), adv, mask, self.cfg.loss, ref)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()
        return out

    def finish(self, rewards: list[float], groups: int, steps: list[dict[str, float]]) -> RoundResult:
        t = torch.tensor(rewards)
        return RoundResult(mean_reward=t.mean().item(), reward_std=t.std().item(), groups=groups, steps=steps)


def policy_update(model: PeftModel, local: LocalSteps, batch: RolloutBatch, adv: torch.Tensor, cfg: GRPOConfig,
                  grad_shared: bool) -> LossOutput:
    """One GRPO step on ``batch``: the old (grpo.mu > 1) and reference (β > 0) log-probs without
    gradient, then grpo.mu policy-gradient iterations; ``grad_shared``: the gradient pass may run
    each group's prompt once (not under example-level DP's per-sample gradients)."""
    temp, mask = cfg.sampling.temperature, batch.completion_mask.float()
    model.train()
    with torch.no_grad():
        old = completion_logprobs(model, batch, temp, cfg.shared_prefix) if cfg.mu > 1 else None
        ref = None
        if cfg.loss.beta > 0:
            with model.disable_adapter():
                ref = completion_logprobs(model, batch, temp, cfg.shared_prefix)
    for _ in range(cfg.mu):
        out = local.update(completion_logprobs(model, batch, temp, grad_shared), old, adv, mask, ref,
                           cfg.group_size)
    return out


def train_round(model: PeftModel, tok: PreTrainedTokenizerBase, rollout: RolloutBackend,
                pool: list[Problem], reward_fn: RewardFn, cfg: GRPOConfig, seed: int,
                make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
                dp: MakesPrivate | None = None, max_reward: float = 1.0) -> RoundResult:
    """Run ``cfg.steps`` GRPO steps on prompts drawn from ``pool``. Fresh optimizer each round:
    the global adapter it starts from changed since the last one. With ``dp`` (ExampleDPSettings),
    example-level DP-SGD (privacy/dpsgd.py): Poisson-sampled prompts, per-group clipping and noise.
    ``max_reward`` is the best score ``reward_fn`` can give (the client's reward scale): NGRPO's
    virtual sample."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params) if make_optimizer else torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = random.Random(seed)
    local = LocalSteps(model, opt, cfg, rng)
    if dp is not None:
        local = dp.make_private(local, len(pool))
    grad_shared = cfg.shared_prefix and local.shares_prefix_in_loss
    all_rewards: list[float] = []
    groups = 0
    steps = []
    g = cfg.group_size
    for step in range(cfg.steps):
        problems = local.sample(pool)
        if not problems:  # an empty Poisson sample still takes its (noisy) steps
            local.observe(torch.zeros(0), g)
            for _ in range(cfg.mu):
                local.skip()
            steps.append({"groups": 0.0, "zero_std_frac": 1.0})
            continue
        batch = rollout.generate(model, tok, [p.prompt for p in problems], g, cfg.sampling, rng.getrandbits(31))
        rewards = torch.tensor([reward_fn(problems[i // g], batch.texts[i], batch.finished[i])
                                for i in range(len(batch.texts))], dtype=torch.float32)
        all_rewards.extend(rewards.tolist())
        local.observe(rewards, g)
        informative = informative_groups(rewards, g)
        trainable = ngrpo_trainable_groups(rewards, g, max_reward) if cfg.advantage == "ngrpo" else informative
        keep = local.trim([i for i in range(len(problems)) if trainable[i] or not cfg.filter_informative])
        metrics = {"reward_mean": rewards.mean().item(), "reward_std": rewards.std().item(),
                   "zero_std_frac": 1.0 - informative.float().mean().item(),
                   "completion_len": batch.completion_mask.sum(1).float().mean().item(),
                   "groups": float(len(keep))}
        if not keep:  # nothing to learn from this batch
            for _ in range(cfg.mu):
                local.skip()
            steps.append(metrics)
            continue
        groups += len(keep)
        batch = select_groups(batch, keep, g)
        kept_rewards = rewards.view(-1, g)[keep].reshape(-1)
        adv = (ngrpo_advantages(kept_rewards, g, max_reward, cfg.scale_rewards) if cfg.advantage == "ngrpo"
               else group_advantages(kept_rewards, g, cfg.scale_rewards)).to(batch.sequences.device)
        out = policy_update(model, local, batch, adv, cfg, grad_shared)
        metrics.update({"loss": out.loss.item(), **out.metrics})
        steps.append(metrics)
        log.debug("step %d %s", step, metrics)
    return local.finish(all_rewards, groups, steps)


def _private_result(moments: tuple[float, float], expected: float, noise_sd: float, bound: float,
                    steps: list[dict[str, float]]) -> RoundResult:
    """The round's reward mean and spread from the noisy moment sums over the expected (public)
    number of sampled records, and that public count as the groups (n_i): everything the weight
    e_i then uses
    is post-processing of DP releases. The spread is floored at the noise on the mean: it is the
    first gain's scale (gain.py), and a change smaller than the noise is no evidence of a gain
    (noise can otherwise drive the estimated variance to 0 and the gain to ±G)."""
    mean = min(max(moments[0] / expected, 0.0), 1.0)
    var = max(moments[1] / expected - mean * mean, 0.0)
    return RoundResult(mean_reward=bound * mean, reward_std=bound * max(math.sqrt(var), noise_sd),
                       groups=round(expected), steps=steps)
