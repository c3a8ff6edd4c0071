"""Unit conversions ("3 g to mg=" -> "3000"): the factor is fixed by the visible unit pair.

Typical mistakes a model (or a tired clinician) makes are reproduced as slips: no conversion
at all, a factor off by ten, and converting in the wrong direction.
"""

from __future__ import annotations

import random
from decimal import Decimal

from secure_fgrpo.tasks.base import Problem, TaskFamily
from secure_fgrpo.tasks.formats import canonical_number, extract_number, numeric_slips

# (from, to, factor): value_in_to = value_in_from * factor. Each pair appears in both directions.
_BASE_PAIRS: tuple[tuple[str, str, int], ...] = (
    ("g", "mg", 1000),
    ("kg", "g", 1000),
    ("mg", "mcg", 1000),
    ("l", "ml", 1000),
    ("cm", "mm", 10),
    ("m", "cm", 100),
)
CONVERSIONS: tuple[tuple[str, str, Decimal], ...] = tuple(
    conv
    for src, dst, factor in _BASE_PAIRS
    for conv in ((src, dst, Decimal(factor)), (dst, src, Decimal(1) / Decimal(factor)))
)
_FACTORS: dict[tuple[str, str], Decimal] = {(s, d): f for s, d, f in CONVERSIONS}


def _parse(prompt: str) -> tuple[Decimal, Decimal]:
    """(value, factor) of a prompt this family generated."""
    value, src, _to, dst = prompt.rstrip("=").split(" ")
    return Decimal(value), _FACTORS[(src, dst)]


class UnitConversion(TaskFamily):
    """Convert a positive quantity between metric units; answers are canonical decimals."""

    name = "unit"
    numeric = True

    def sample(self, rng: random.Random) -> Problem:
        # Integers on both sides: converting is appending or stripping zeros, which a ~1M
        # character model learns; shifting decimal points (0.33 mm -> 0.033 cm) it does not.
        src, dst, factor = rng.choice(CONVERSIONS)
        mantissa = Decimal(rng.randint(1, 99))
        value = mantissa if factor >= 1 else mantissa / factor
        shown, answer = canonical_number(value), canonical_number(value * factor)
        return Problem(prompt=f"{shown} {src} to {dst}=", answer=answer, family=self.name)

    def slips(self, problem: Problem) -> list[str]:
        value, factor = _parse(problem.prompt)
        right = value * factor
        # The unconverted number comes first: it always fits and always differs.
        return numeric_slips(problem.answer, [value, right * 10, right / 10, value / factor])

    def extract(self, completion: str) -> str | None:
        return extract_number(completion)
