"""Shared-prefix forward (Prefix Grouper): each group's prompt runs once, not G times.

All G completions of a prompt share its (left-padded) prompt tokens, so the prompt's keys and
values are the same in every row. Here the distinct prompts of a batch go through the model once
with ``use_cache=True``; their KV cache is gathered up to one row per completion (an index
gather, so gradients from every completion flow back into the one prompt pass), and the
completions then run against it with the positions and attention mask the plain path uses. The
prompt pass keeps only its last logit (the one that predicts the first completion token), so
the vocabulary projection over prompt positions is skipped too.

The result equals the plain path up to float rounding (tests/test_grpo_prefix.py: ≤ 1e-5 in
log-probs and LoRA gradients). Not for a pass whose per-sample gradients Opacus records: that
needs one forward pass with one row per completion (see grpo/trainer.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..rollout.base import RolloutBatch

if TYPE_CHECKING:
    from ..model.lora import CausalLM


def prompt_groups(batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the distinct prompts (first row of each run of identical consecutive prompt
    rows, padding included) and, per row, the index of its prompt among them."""
    p = batch.prompt_len
    prompt = torch.cat([batch.sequences[:, :p], batch.attention_mask[:, :p]], 1)
    same = (prompt[1:] == prompt[:-1]).all(1)
    starts = torch.cat([same.new_ones(1), ~same])
    inverse = starts.long().cumsum(0) - 1
    return starts.nonzero().squeeze(1), inverse


def shared_prefix_logits(model: CausalLM, batch: RolloutBatch) -> torch.Tensor:
    """[N, T, V] logits predicting each completion token, the prompt computed once per group."""
    p = batch.prompt_len
    first, inverse = prompt_groups(batch)
    positions = batch.position_ids
    head = model(input_ids=batch.sequences[first, :p], attention_mask=batch.attention_mask[first, :p],
                 position_ids=positions[first, :p], use_cache=True, logits_to_keep=1)
    cache = head.past_key_values
    if not hasattr(cache, "batch_select_indices"):
        raise RuntimeError(f"grpo.shared_prefix needs a model that returns a transformers Cache; "
                           f"{type(model).__name__} returned {type(cache).__name__}: set grpo.shared_prefix = false")
    first_logit = head.logits[inverse]
    if batch.sequences.shape[1] == p + 1:  # one completion token: the prompt's last logit is all
        return first_logit
    cache.batch_select_indices(inverse)  # one row per completion; differentiable gather
    # The last completion token predicts nothing that is read: it is not fed.
    tail = model(input_ids=batch.sequences[:, p:-1], attention_mask=batch.attention_mask[:, :-1],
                 position_ids=positions[:, p:-1], past_key_values=cache, use_cache=True).logits
    return torch.cat([first_logit, tail], 1)
