"""The rollout interface: groups of sampled completions for a batch of prompts. Backends
(transformers on CPU/GPU; vllm on a GPU, an optional extra) must return the same batch shape
and position convention, because log-probs are recomputed by the training code."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

if TYPE_CHECKING:
    from ..model.lora import CausalLM




@dataclass
class RolloutBatch:
    """Rows ``i*G .. i*G+G-1`` are prompt i's group. Prompts are left-padded to ``prompt_len``;
    ``completion_mask`` is 1 on generated tokens up to and including EOS, 0 after it."""

    sequences: torch.Tensor  # [N, P+T] token ids
    attention_mask: torch.Tensor  # [N, P+T]
    completion_mask: torch.Tensor  # [N, T]
    prompt_len: int
    texts: list[str]  # completion text, EOS excluded
    finished: list[bool]  # emitted EOS within the length budget

    @property
    def position_ids(self) -> torch.Tensor:
        """Left padding needs explicit positions; the same ones generation used."""
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)


# Sampling over the whole vocabulary at ``temperature``: no top-k / top-p truncation (the
# GRPO ratio's log-probs are of the full softmax at that temperature). Every backend uses these.
TOP_K = 0  # disabled (transformers and vLLM both read 0 as "all tokens")
TOP_P = 1.0


@dataclass(frozen=True)
class SamplingSpec:
    max_new_tokens: int = 8
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


def suppressed_tokens(tok: PreTrainedTokenizerBase) -> list[int]:
    """Ids never sampled: padding, BOS and unknown (unless one of them is EOS, which ends a
    completion). A completion containing them would not survive decode/re-encode."""
    return sorted({t for t in (tok.pad_token_id, tok.bos_token_id, tok.unk_token_id)
                   if t is not None and t != tok.eos_token_id})


class RolloutBackend(ABC):
    @abstractmethod
    def generate(self, model: CausalLM, tok: PreTrainedTokenizerBase, prompts: list[str],
                 group_size: int, sampling: SamplingSpec, seed: int) -> RolloutBatch: ...


def assemble_batch(tok: PreTrainedTokenizerBase, seq: torch.Tensor, prompt_att: torch.Tensor,
                   prompt_len: int, max_new: int) -> RolloutBatch:
    """The batch every backend returns, from left-padded prompt ids + generated ids (``seq``):
    completions padded to ``max_new``, masked after the first EOS, texts decoded here (one
    grading path whatever generated them)."""
    comp = seq[:, prompt_len:]
    if comp.shape[1] < max_new:  # generation stopped early for every row
        pad = torch.full((comp.shape[0], max_new - comp.shape[1]), tok.pad_token_id, dtype=comp.dtype,
                         device=comp.device)
        comp = torch.cat([comp, pad], 1)
    is_eos = comp == tok.eos_token_id
    finished = is_eos.any(1)
    first_eos = torch.where(finished, is_eos.int().argmax(1), torch.full_like(finished, max_new, dtype=torch.long))
    steps = torch.arange(max_new, device=comp.device).unsqueeze(0)
    mask = (steps <= first_eos.unsqueeze(1)).long()
    mask = torch.where(finished.unsqueeze(1), mask, (steps < max_new).long())
    comp = torch.where(mask.bool(), comp, torch.full_like(comp, tok.pad_token_id))
    texts: list[str] = []
    for row, end in zip(comp.tolist(), first_eos.tolist(), strict=True):
        texts.append(str(tok.decode(row[: min(end, max_new)], skip_special_tokens=True)))  # one row: a str
    return RolloutBatch(
        sequences=torch.cat([seq[:, :prompt_len], comp], 1),
        attention_mask=torch.cat([prompt_att, mask], 1),
        completion_mask=mask,
        prompt_len=prompt_len,
        texts=texts,
        finished=finished.tolist(),
    )
