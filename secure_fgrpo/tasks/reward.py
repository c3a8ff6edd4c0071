"""The verifiable reward and the noisy warm-start targets, both defined per problem family."""

from __future__ import annotations

import random

from secure_fgrpo.tasks.base import Problem, RewardSpec
from secure_fgrpo.tasks.registry import get_family


def score(problem: Problem, completion: str, finished: bool, spec: RewardSpec) -> float:
    """``spec.scale * (correctness + w * well_formed) / (1 + w)``; 0 when EOS never came.

    ``completion`` is the generated text after the prompt, without the EOS token.
    """
    if not finished:
        return 0.0
    family = get_family(problem.family)
    predicted = family.extract(completion)
    well_formed = 1.0 if family.well_formed(completion) else 0.0
    correct = family.correctness(problem, predicted, spec.partial)
    return spec.scale * (correct + spec.format_weight * well_formed) / (1.0 + spec.format_weight)


def warm_start_target(problem: Problem, rng: random.Random, p_correct: float = 0.4) -> str:
    """The reference answer with probability ``p_correct``, else one of the family's slips.

    Noisy targets give the warm-started model a spread of answers, so GRPO groups carry
    reward variance for RL to sharpen.
    """
    if not 0.0 <= p_correct <= 1.0:
        raise ValueError(f"p_correct must be in [0, 1], got {p_correct}")
    if rng.random() < p_correct:
        return problem.answer
    return rng.choice(get_family(problem.family).slips(problem))
