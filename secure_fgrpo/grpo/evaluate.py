"""Held-out accuracy as sampled pass@1: one completion per prompt at the sampling temperature,
scored 0/1 by the family's extractor (reward scales play no part)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from ..rollout.base import RolloutBackend, SamplingSpec
from ..tasks import get_family
from ..tasks.base import Problem

if TYPE_CHECKING:
    from ..model.lora import CausalLM


def pass_at_1(model: CausalLM, tok: PreTrainedTokenizerBase, rollout: RolloutBackend,
              problems: list[Problem], sampling: SamplingSpec, seed: int, batch_size: int = 256) -> float:
    if not problems:
        raise ValueError("pass_at_1: no evaluation problems")
    correct = 0.0
    with torch.no_grad():
        for start in range(0, len(problems), batch_size):
            chunk = problems[start : start + batch_size]
            out = rollout.generate(model, tok, [p.prompt for p in chunk], 1, sampling, seed + start)
            for p, text, done in zip(chunk, out.texts, out.finished, strict=True):
                fam = get_family(p.family)
                correct += fam.correctness(p, fam.extract(text), partial=False) if done else 0.0
    return correct / len(problems)
