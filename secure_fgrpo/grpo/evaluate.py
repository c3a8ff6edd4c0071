"""Held-out accuracy as sampled pass@1: one completion per prompt at the sampling temperature,
scored 0/1 by the family's extractor (reward scales play no part). One pass gives the accuracy,
its split by family (per calculator for clinical tasks) and the answers, so a per-calculator
table never costs a second generation."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from ..rollout.base import RolloutBackend, SamplingSpec
from ..tasks import get_family
from ..tasks.base import Problem

if TYPE_CHECKING:
    from ..model.lora import CausalLM


@dataclass(frozen=True)
class Scored:
    """One held-out prompt's sampled completion, scored."""

    family: str
    correct: float  # 0/1; 0 for a completion cut off by the token budget
    answer: str | None  # the extracted answer of a finished completion (None: none, or unfinished)


def score(model: CausalLM, tok: PreTrainedTokenizerBase, rollout: RolloutBackend, problems: list[Problem],
          sampling: SamplingSpec, seed: int, batch_size: int = 256) -> list[Scored]:
    if not problems:
        raise ValueError("held-out evaluation: no problems to score")
    scored: list[Scored] = []
    with torch.no_grad():
        for start in range(0, len(problems), batch_size):
            chunk = problems[start : start + batch_size]
            out = rollout.generate(model, tok, [p.prompt for p in chunk], 1, sampling, seed + start)
            for p, text, done in zip(chunk, out.texts, out.finished, strict=True):
                fam = get_family(p.family)
                answer = fam.extract(text) if done else None
                scored.append(Scored(p.family, fam.correctness(p, answer, partial=False) if done else 0.0, answer))
    return scored


def accuracy(scored: list[Scored]) -> float:
    return sum(s.correct for s in scored) / len(scored)


def accuracy_by_family(scored: list[Scored]) -> dict[str, tuple[float, int]]:
    """Accuracy and prompt count per family, sorted by family."""
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[s.family].append(s)
    return {fam: (accuracy(ss), len(ss)) for fam, ss in sorted(groups.items())}


def pass_at_1(model: CausalLM, tok: PreTrainedTokenizerBase, rollout: RolloutBackend,
              problems: list[Problem], sampling: SamplingSpec, seed: int, batch_size: int = 256) -> float:
    return accuracy(score(model, tok, rollout, problems, sampling, seed, batch_size))
