"""What a task is: a seeded generator of short problems, their plausible slips, an answer
extractor, and a verifiable reward whose scale each institution chooses."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

# Every character a prompt or an answer of the built-in families may use. The embedded
# tokenizer is built from this alphabet (plus special tokens); keep it small and stable.
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz .,:;?=<>+-*/()%"

# Limits the built-in families respect, so the tiny model's context and generation budget
# (prompt + answer + EOS) stay fixed.
MAX_PROMPT_LEN = 40
MAX_ANSWER_LEN = 5


@dataclass(frozen=True)
class Problem:
    """One prompt with its reference answer. ``family`` selects extractor and reward."""

    prompt: str
    answer: str
    family: str


@dataclass(frozen=True)
class RewardSpec:
    """An institution's reward scale: 0/1, 0/10, partial credit by relative error, ...

    reward = scale * (correctness + format_weight * well_formed) / (1 + format_weight)
    where correctness is 1/0, or 1 - min(1, |pred - ref| / |ref|) when ``partial`` and the
    family is numeric. A completion that never emitted EOS gets 0.
    """

    scale: float = 1.0
    partial: bool = False
    format_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"reward.scale must be > 0, got {self.scale}")
        if self.format_weight < 0:
            raise ValueError(f"reward.format_weight must be >= 0, got {self.format_weight}")


class TaskFamily(ABC):
    """A family of problems. Subclasses are stateless; all randomness comes from ``rng``."""

    name: str = ""
    numeric: bool = False

    @abstractmethod
    def sample(self, rng: random.Random) -> Problem:
        """A fresh problem (prompt ends with the family's cue, e.g. ``"="``)."""

    @abstractmethod
    def slips(self, problem: Problem) -> list[str]:
        """Plausible wrong answers (wrong unit factor, no conversion, flipped threshold...)."""

    @abstractmethod
    def extract(self, completion: str) -> str | None:
        """The normalised answer in a completion, or None when it is not well formed."""

    def well_formed(self, completion: str) -> bool:
        """Whether the completion has the answer format the format term rewards. For most families
        that is "an answer could be extracted"; a family may read answers more leniently than the
        format it rewards (tasks/medcalc.py)."""
        return self.extract(completion) is not None

    def correctness(self, problem: Problem, predicted: str | None, partial: bool) -> float:
        """1.0 for the right answer; with ``partial`` on a numeric family, relative-error credit."""
        if predicted is None:
            return 0.0
        if predicted == problem.answer:
            return 1.0
        if partial and self.numeric:
            try:
                p, r = float(predicted), float(problem.answer)
            except ValueError:
                return 0.0
            if r == 0:
                return 0.0
            return max(0.0, 1.0 - abs(p - r) / abs(r))
        return 0.0
