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

import math
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


def ngrpo_advantages(
    rewards: torch.Tensor, group_size: int, max_reward: float, scale: ScaleRewards = "group", eps: float = 1e-4
) -> torch.Tensor:
    """NGRPO's calibrated advantages: each group's mean and std include one virtual sample with
    the task's maximum reward, so a group that is wrong throughout is pushed down instead of
    ignored, while a group at ``max_reward`` throughout still gets exactly 0.

    Nan et al. 2025, "NGRPO: Negative-enhanced Group Relative Policy Optimization"
    (arXiv:2509.18851, Advantage Calibration), as the authors' code computes it
    (github.com/nangongrui-ngr/NGRPO, ``compute_ngrpo_outcome_advantage``, one virtual sample):
    R' = R + [r_max], A_i = (r_i - mean(R')) / (std(R') + eps), std Bessel-corrected over the
    G + 1 values (this reproduces the paper's worked case: 1 right of 8 gives 1.76 / -0.50
    where GRPO gives 2.47 / -0.35). ``eps`` is this project's (TRL's) 1e-4; the authors use
    1e-6. ``scale="none"`` only centres on mean(R'); ``"batch"`` has no NGRPO definition.
    """
    if scale not in ("group", "none"):
        raise ValueError(f"scale must be 'group' or 'none' with NGRPO advantages, got {scale!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    grouped = _grouped(rewards, group_size)
    top = _check_max_reward(grouped, max_reward)
    augmented = torch.cat([grouped, top.expand(grouped.shape[0], 1)], dim=1)
    centred = grouped - augmented.mean(dim=1, keepdim=True)
    # A group at r_max throughout carries no signal; zero it exactly (its mean may be off an ulp).
    signal = _below_max(grouped, top).unsqueeze(1)
    centred = torch.where(signal, centred, torch.zeros_like(centred))
    if scale == "group":
        centred = centred / (augmented.std(dim=1, correction=1, keepdim=True) + eps)
    return centred.reshape(-1)


def ngrpo_trainable_groups(rewards: torch.Tensor, group_size: int, max_reward: float) -> torch.Tensor:
    """Bool ``[B]``: the groups NGRPO learns from, i.e. all but those at ``max_reward``
    throughout. Unlike ``informative_groups`` this keeps the all-wrong groups that GRPO's
    dynamic sampling drops (the authors' ``filter_groups.strategy = all_correct``)."""
    grouped = _grouped(rewards, group_size)
    return _below_max(grouped, _check_max_reward(grouped, max_reward))


def _check_max_reward(grouped: torch.Tensor, max_reward: float) -> torch.Tensor:
    """``max_reward`` as a [1, 1] tensor of the rewards' dtype; every reward must be <= it
    (the virtual sample is the best any completion can score)."""
    if isinstance(max_reward, bool) or not isinstance(max_reward, int | float) or not math.isfinite(max_reward):
        raise ValueError(f"max_reward must be a finite number, got {max_reward!r}")
    top = torch.tensor([[max_reward]], dtype=grouped.dtype, device=grouped.device)
    if bool((grouped > top).any()):
        raise ValueError(f"a reward {float(grouped.max())!r} exceeds max_reward={max_reward!r}: NGRPO's "
                         "virtual sample must be the best reward a completion can get")
    return top


def _below_max(grouped: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    return grouped.amin(dim=1) < top[0, 0]
