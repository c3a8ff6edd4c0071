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


@dataclass(frozen=True)
class SamplingSpec:
    max_new_tokens: int = 8
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class RolloutBackend(ABC):
    @abstractmethod
    def generate(self, model: CausalLM, tok: PreTrainedTokenizerBase, prompts: list[str],
                 group_size: int, sampling: SamplingSpec, seed: int) -> RolloutBatch: ...
