"""Seeded clinical-style problem families with verifiable rewards.

Built-in generators: ``unit`` (conversions), ``vitals`` (thresholds), ``dose`` (totals),
``choice`` (multiple choice). ``numeric`` and ``yesno`` only score user data. Clinical
calculations on the MedCalc-Bench calculators (``mc_*`` and the specialties) are for a
pretrained model (tasks/medcalc.py).
"""

from secure_fgrpo.tasks.base import (
    ALPHABET,
    MAX_ANSWER_LEN,
    MAX_PROMPT_LEN,
    Problem,
    RewardSpec,
    TaskFamily,
)
from secure_fgrpo.tasks.heldout import HELD_OUT_ONE_IN, in_held_out_space, sample_in_space
from secure_fgrpo.tasks.registry import (
    CLINICAL_FAMILIES,
    FAMILIES,
    GENERATED_FAMILIES,
    SAMPLED_FAMILIES,
    get_family,
    normalise_mix,
    sample_problems,
)
from secure_fgrpo.tasks.reward import score, warm_start_target

__all__ = [
    "ALPHABET",
    "CLINICAL_FAMILIES",
    "FAMILIES",
    "GENERATED_FAMILIES",
    "HELD_OUT_ONE_IN",
    "MAX_ANSWER_LEN",
    "MAX_PROMPT_LEN",
    "SAMPLED_FAMILIES",
    "Problem",
    "RewardSpec",
    "TaskFamily",
    "get_family",
    "in_held_out_space",
    "normalise_mix",
    "sample_in_space",
    "sample_problems",
    "score",
    "warm_start_target",
]
