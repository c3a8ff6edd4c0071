"""Clipped GRPO policy loss with TRL's three token-normalisations, and GSPO.

Mirrors ``GRPOTrainer._compute_loss`` in TRL (read at v1.16.0, pinned in pyproject's ``bench``
extra, and at main f2cd577) for ``importance_sampling_level="token"``:

- ratio = exp(logps - old_logps); per-token loss = -min(ratio*A, clamp(ratio, 1-eps_low, 1+eps_high)*A)
- beta > 0: + beta * k3 KL, exp(ref - logps) - (ref - logps) - 1
- grpo: mean over sequences of the per-sequence token mean;
  dr_grpo: token sum / (N * max_completion_length);
  dapo: token sum / number of completion tokens (TRL: ``num_items_in_batch``, the token count of
  the whole generation batch over all processes, rescaled to one accumulation window; with one
  process and the whole batch in one step that is ``mask.sum()``).
- metrics as TRL logs them: clip fractions are masked token means of
  low = ratio < 1-eps_low with A < 0, high = ratio > 1+eps_high with A > 0, region = either;
  kl is the masked token mean of the k3 term.

``gspo`` (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071, eq. 5-7) is
TRL 1.16's ``loss_type="grpo"`` with ``importance_sampling_level="sequence"`` (the setup TRL
recommends for GSPO): one ratio per sequence, s_i = exp(mean over its completion tokens of
(logps - old_logps)), clipped to [1-eps_low, 1+eps_high] (the paper: 3e-4 / 4e-4), loss =
mean over sequences of -min(s_i*A_i, clip(s_i)*A_i) (+ beta * the sequence's token-mean k3 KL);
its clip fractions are means over sequences, not tokens, as TRL logs them. GSPO-token (eq. 13-14)
is not a separate choice: with one advantage per sequence, which is all this project computes,
the paper shows it equals GSPO in value and gradient.

Not mirrored: TRL's ``bnpo``/``cispo``/``sapo``/``vespo``/``luspo`` losses, sequence-level
importance sampling with the token-sum losses, ``delta`` (extra upper clamp), the entropy mask
and bonus, off-policy masking, vLLM importance-sampling correction, bias-corrected KL, and
division by the gradient accumulation steps (the training loop owns that). Extra here:
``ratio_mean`` (masked token mean; for gspo the mean over sequences), and padding positions are
zeroed *before* the arithmetic, so garbage (even NaN/inf) in padded log-probs cannot leak into
the loss or its gradient; for finite inputs the result equals TRL's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch

LossType = Literal["grpo", "dr_grpo", "dapo", "gspo"]


@dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters; defaults follow DAPO (asymmetric clip, no KL)."""

    loss_type: LossType = "dapo"
    epsilon_low: float = 0.2
    epsilon_high: float = 0.28
    beta: float = 0.0
    max_completion_length: int = 8

    def __post_init__(self) -> None:
        if self.loss_type not in get_args(LossType):
            raise ValueError(f"loss_type must be one of {get_args(LossType)}, got {self.loss_type!r}")
        if not 0.0 <= self.epsilon_low < 1.0:
            raise ValueError(f"epsilon_low must be in [0, 1), got {self.epsilon_low!r}")
        if not self.epsilon_high >= 0.0:
            raise ValueError(f"epsilon_high must be >= 0, got {self.epsilon_high!r}")
        if not self.beta >= 0.0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        if not isinstance(self.max_completion_length, int) or self.max_completion_length < 1:
            raise ValueError(
                f"max_completion_length must be a positive int, got {self.max_completion_length!r}"
            )


@dataclass
class LossOutput:
    """The scalar to backpropagate plus detached diagnostics (Python floats)."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


def _check_shapes(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logps: torch.Tensor | None,
) -> None:
    if logps.dim() != 2:
        raise ValueError(f"logps must be [N, T], got shape {tuple(logps.shape)}")
    expected = tuple(logps.shape)
    for name, t in (("old_logps", old_logps), ("mask", mask), ("ref_logps", ref_logps)):
        if t is not None and tuple(t.shape) != expected:
            raise ValueError(f"{name} must have the shape of logps {expected}, got {tuple(t.shape)}")
    if tuple(advantages.shape) != expected[:1]:
        raise ValueError(f"advantages must be [N] = {expected[:1]}, got {tuple(advantages.shape)}")
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 and 1 (1 on completion tokens)")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """Token mean over the mask, as TRL's ``global_masked_mean`` on one process."""
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


def policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cfg: LossConfig,
    ref_logps: torch.Tensor | None = None,
) -> LossOutput:
    """Clipped surrogate loss over completion tokens; only ``logps`` carries gradient.

    ``old_logps`` (behaviour policy), ``ref_logps`` and ``advantages`` are treated as constants,
    as TRL computes them without grad.
    """
    if cfg.beta > 0 and ref_logps is None:
        raise ValueError("ref_logps is required when cfg.beta > 0 (KL to the reference policy)")
    _check_shapes(logps, old_logps, advantages, mask, ref_logps)
    if cfg.loss_type == "dr_grpo" and logps.shape[1] > cfg.max_completion_length:
        raise ValueError(
            f"logps has {logps.shape[1]} token positions, more than "
            f"max_completion_length={cfg.max_completion_length} that dr_grpo divides by"
        )

    keep = mask.bool()
    m = keep.to(logps.dtype)
    zero = torch.zeros((), dtype=logps.dtype, device=logps.device)
    lp = torch.where(keep, logps, zero)
    old = torch.where(keep, old_logps.detach().to(logps.dtype), zero)
    adv = advantages.detach().to(logps.dtype).unsqueeze(1)

    sequence_level = cfg.loss_type == "gspo"
    if sequence_level:  # [N, 1]: one length-normalised ratio per sequence
        ratio = torch.exp(((lp - old) * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0))
    else:
        ratio = torch.exp(lp - old)
    clipped = torch.clamp(ratio, 1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)

    kl_metric = 0.0
    if cfg.beta > 0 and ref_logps is not None:  # None with beta > 0 was rejected above
        ref = torch.where(keep, ref_logps.detach().to(logps.dtype), zero)
        delta = ref - lp
        per_token_kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + cfg.beta * per_token_kl
        kl_metric = _masked_mean(per_token_kl.detach(), m)

    masked = per_token * m
    n_seqs = logps.shape[0]
    if cfg.loss_type in ("grpo", "gspo"):
        loss = (masked.sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    elif cfg.loss_type == "dr_grpo":
        loss = masked.sum() / (n_seqs * cfg.max_completion_length)
    else:  # "dapo"
        loss = masked.sum() / m.sum().clamp(min=1.0)

    with torch.no_grad():
        low = ((ratio < 1.0 - cfg.epsilon_low) & (adv < 0)).to(m.dtype)
        high = ((ratio > 1.0 + cfg.epsilon_high) & (adv > 0)).to(m.dtype)
        mean = (lambda x: float(x.mean())) if sequence_level else (lambda x: _masked_mean(x, m))
        metrics = {
            "clip_fraction/low": mean(low),
            "clip_fraction/high": mean(high),
            "clip_fraction/region": mean(torch.maximum(low, high)),
            "kl": kl_metric,
            "ratio_mean": mean(ratio),
        }
    return LossOutput(loss=loss, metrics=metrics)
