"""Per-token log-probs of the completion tokens, recomputed with the positions generation used."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..rollout.base import RolloutBatch
from .prefix import shared_prefix_logits

if TYPE_CHECKING:
    from ..model.lora import CausalLM


def completion_logprobs(model: CausalLM, batch: RolloutBatch, temperature: float = 1.0,
                        shared_prefix: bool = False) -> torch.Tensor:
    """[N, T] log π(token) for each completion token (garbage where ``completion_mask`` is 0).
    ``shared_prefix``: run each group's prompt once (grpo/prefix.py); same values and gradients.
    Either way only the T positions that predict completion tokens go through the vocabulary
    projection (``logits_to_keep``): prompt-position logits are never read."""
    p, t = batch.prompt_len, batch.completion_mask.shape[1]
    if shared_prefix and p > 0:
        logits = shared_prefix_logits(model, batch)
    else:
        logits = model(input_ids=batch.sequences, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids, logits_to_keep=t + 1).logits[:, :-1]
    targets = batch.sequences[:, p:]
    return torch.log_softmax(logits.float() / temperature, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
