"""Group-relative advantages: each completion is scored against its own prompt's group.

Mirrors the ``multi_objective_aggregation == "sum_then_normalize"`` (default) branch of
``GRPOTrainer._generate_and_score_completions`` in TRL (read at v1.16.0, the version pinned in
pyproject's ``bench`` extra, and at main f2cd577): advantage = reward - group mean, divided by
``std + 1e-4`` where std is TRL's ``nanstd`` (Bessel-corrected, i.e. ``torch.std`` with
``correction=1``), per group for ``"group"`` and over the whole batch for ``"batch"``, with no
division for ``"none"``. As in TRL, ``"batch"`` still subtracts the *group* mean.

Differences from TRL, on purpose: TRL lets a reward be NaN ("unscorable") and ignores it in the
mean/std; here rewards must be finite (a clear error instead). A constant group gets exactly 0
(TRL: 0 up to the rounding of the group mean, ~1e-13). Where TRL has one sample only (group of
1, or a batch of 1) it uses std 0; so do we, instead of torch's NaN.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

ScaleRewards = Literal["group", "batch", "none"]


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Validate and reshape ``[B*G]`` rewards into ``[B, G]`` (prompt-major layout)."""
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 1:
        shape = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"rewards must be a 1-D tensor [B*G], got {shape}")
    if rewards.numel() == 0 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards has {rewards.numel()} entries, not a positive multiple of group_size={group_size}"
        )
    if not torch.is_floating_point(rewards):
        rewards = rewards.to(torch.get_default_dtype())
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards must be finite (no NaN/inf)")
    return rewards.view(-1, group_size)


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: ScaleRewards = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Return ``[B*G]`` advantages ``(r - mean_group) / (std + eps)`` (see module docstring).

    A group whose rewards are all equal gets advantage 0: it carries no learning signal.
    """
    if scale not in get_args(ScaleRewards):
        raise ValueError(f"scale must be one of {get_args(ScaleRewards)}, got {scale!r}")
    if not eps > 0:  # eps = 0 would turn a constant group into 0/0 = NaN
        raise ValueError(f"eps must be > 0, got {eps!r}")
    grouped = _grouped(rewards, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    # A constant group's mean can be off by an ulp (e.g. three 0.1s); TRL would then return
    # ~1e-13 instead of 0. Zero it exactly so that "no signal" really means no gradient.
    informative = _informative(grouped).unsqueeze(1)
    centred = torch.where(informative, centred, torch.zeros_like(centred)).reshape(-1)
    if scale == "none":
        return centred
    if scale == "group":
        if group_size > 1:
            std = grouped.std(dim=1, correction=1).repeat_interleave(group_size)
        else:
            std = torch.zeros_like(centred)
    else:  # "batch"
        flat = grouped.reshape(-1)
        std = flat.std(correction=1).expand_as(centred) if flat.numel() > 1 else torch.zeros_like(centred)
    return centred / (std + eps)


def informative_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Bool ``[B]``: True where a group's rewards are not all equal (reward std > 0).

    Compared exactly (max > min) rather than through a float std, so a constant group of
    e.g. 0.1s never counts as informative because of rounding.
    """
    return _informative(_grouped(rewards, group_size))


def _informative(grouped: torch.Tensor) -> torch.Tensor:
    return grouped.amax(dim=1) > grouped.amin(dim=1)
