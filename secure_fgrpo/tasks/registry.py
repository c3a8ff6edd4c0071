"""The family registry and seeded sampling of problem mixtures."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from secure_fgrpo.tasks.base import Problem, TaskFamily
from secure_fgrpo.tasks.choice import MultipleChoice
from secure_fgrpo.tasks.dose import DoseTotal
from secure_fgrpo.tasks.generic import GenericNumeric, GenericYesNo
from secure_fgrpo.tasks.heldout import Space, sample_in_space
from secure_fgrpo.tasks.medcalc import CALCULATOR_FAMILIES, SPECIALTY_FAMILIES
from secure_fgrpo.tasks.medcalc_points import POINTS_FAMILIES, POINTS_SPECIALTIES
from secure_fgrpo.tasks.unit import UnitConversion
from secure_fgrpo.tasks.vitals import VitalThreshold

# Read-only so no caller can change what a family name means for everyone else.
FAMILIES: Mapping[str, TaskFamily] = MappingProxyType(
    {
        f.name: f
        for f in (
            UnitConversion(),
            VitalThreshold(),
            DoseTotal(),
            MultipleChoice(),
            GenericNumeric(),
            GenericYesNo(),
            *CALCULATOR_FAMILIES,
            *SPECIALTY_FAMILIES,
            *POINTS_FAMILIES,
            *POINTS_SPECIALTIES,
        )
    }
)
# The short built-in families that can generate problems (the others only score user data);
# the embedded model is warm-started on exactly these.
GENERATED_FAMILIES: tuple[str, ...] = ("unit", "vitals", "dose", "choice")
# Clinical calculations for a pretrained model (tasks/medcalc.py): per calculator and per specialty.
CLINICAL_FAMILIES: tuple[str, ...] = tuple(
    f.name for f in (*CALCULATOR_FAMILIES, *SPECIALTY_FAMILIES, *POINTS_FAMILIES, *POINTS_SPECIALTIES))
SAMPLED_FAMILIES: tuple[str, ...] = GENERATED_FAMILIES + CLINICAL_FAMILIES  # what a client's mix may name


def get_family(name: str) -> TaskFamily:
    """The registered family called ``name``; ValueError naming it and the known ones otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task family {name!r}; known: {sorted(FAMILIES)}") from None


def normalise_mix(families: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """Mixture weights summing to 1 from a list (uniform) or a weight mapping."""
    if isinstance(families, str):
        families = [families]
    if isinstance(families, Mapping):
        weights = {str(k): float(v) for k, v in families.items()}
    else:
        names = list(families)
        if len(set(names)) != len(names):
            raise ValueError(f"families: duplicate names in {names}")
        weights = {name: 1.0 for name in names}
    if not weights:
        raise ValueError("families: empty mixture")
    for name, w in weights.items():
        get_family(name)
        if not w >= 0 or w == float("inf"):
            raise ValueError(f"families: weight of {name!r} must be finite and >= 0, got {w}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"families: weights must not all be zero, got {weights}")
    return {name: w / total for name, w in weights.items()}


def sample_problems(families: Sequence[str] | Mapping[str, float], n: int, seed: int,
                    space: Space = "train") -> list[Problem]:
    """``n`` problems whose families are drawn i.i.d. from the mixture; same seed, same list.
    Training draws (the default) never come from the held-out space (tasks/heldout.py)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    mix = normalise_mix(families)
    rng = random.Random(seed)
    names = [name for name, w in mix.items() if w > 0]
    weights = [mix[name] for name in names]
    return [sample_in_space(FAMILIES[name], rng, space) for name in rng.choices(names, weights, k=n)]
