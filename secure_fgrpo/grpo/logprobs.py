"""Per-token log-probs of the completion tokens, recomputed with the positions generation used."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ..rollout.base import RolloutBatch


def completion_logprobs(model: PreTrainedModel, batch: RolloutBatch, temperature: float = 1.0) -> torch.Tensor:
    """[N, T] log π(token) for each completion token (garbage where ``completion_mask`` is 0)."""
    logits = model(input_ids=batch.sequences, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids).logits
    p = batch.prompt_len
    logits = logits[:, p - 1 : -1].float() / temperature
    targets = batch.sequences[:, p:]
    return torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
