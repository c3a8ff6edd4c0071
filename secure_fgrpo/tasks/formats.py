"""Answer formats shared by the families: canonical numbers, yes/no and option letters.

One canonical spelling per answer lets correctness be a string comparison, so the reward
never depends on how a number happened to be written ("0.50" and ".5" both mean "0.5").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from secure_fgrpo.tasks.base import MAX_ANSWER_LEN

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# Longer strings are not answers a short-answer task accepts; the cap also keeps Decimal cheap.
_MAX_NUMBER_CHARS = 32

YES, NO = "yes", "no"


def canonical_number(value: Decimal) -> str:
    """Plain decimal notation, no exponent, no trailing zeros, no sign on zero."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def extract_number(completion: str) -> str | None:
    """The canonical form of a completion that is exactly one decimal number, else None."""
    text = completion.strip()
    if len(text) > _MAX_NUMBER_CHARS or not _NUMBER.fullmatch(text):
        return None
    try:
        return canonical_number(Decimal(text))
    except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
        return None


def extract_yesno(completion: str) -> str | None:
    """``"yes"`` or ``"no"`` (case-insensitive, surrounding whitespace ignored), else None."""
    text = completion.strip().lower()
    return text if text in (YES, NO) else None


def flip(answer: str) -> str:
    """The opposite yes/no answer: the slip of a threshold question."""
    return NO if answer == YES else YES


def extract_letter(completion: str, letters: str) -> str | None:
    """One option letter from ``letters`` (case-insensitive, whitespace ignored), else None."""
    text = completion.strip().lower()
    return text if len(text) == 1 and text in letters else None


def numeric_slips(answer: str, candidates: list[Decimal], max_len: int | None = MAX_ANSWER_LEN) -> list[str]:
    """Canonical, distinct candidates that differ from ``answer`` and fit ``max_len`` chars.

    Order is preserved so that slips are deterministic for a given problem.
    """
    out: list[str] = []
    for value in candidates:
        if value < 0:
            continue
        text = canonical_number(value)
        if text == answer or text in out:
            continue
        if max_len is not None and len(text) > max_len:
            continue
        out.append(text)
    return out
