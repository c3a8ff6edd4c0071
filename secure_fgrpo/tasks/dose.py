"""Dose totals: "2 x 250 mg=" -> "500", and daily totals "250 mg tid daily=" -> "750".

Slips are the classic arithmetic errors: the single dose (forgot to multiply), the count
added instead of multiplied, one dose too many or too few, and for "q6h" the hours used as
the number of doses.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal

from secure_fgrpo.tasks.base import Problem, TaskFamily
from secure_fgrpo.tasks.formats import extract_number, numeric_slips

# Round single doses (one significant digit): the product is a small times-table fact plus
# the zeros, which a ~1M character model can learn; 3-digit products it cannot.
DOSES: tuple[int, ...] = tuple(d * z for z in (10, 100) for d in range(1, 10))
UNITS: tuple[str, ...] = ("mg", "mcg", "g", "ml", "units", "iu", "mmol", "meq")
COUNTS: tuple[int, ...] = tuple(range(2, 6))
# Administrations per day; the "qNh" schedules also carry N for the hours-as-count slip.
SCHEDULES: dict[str, int] = {"bid": 2, "tid": 3, "qid": 4, "q6h": 4, "q12h": 2}

_COUNT_FORM = re.compile(r"(\d+) x (\d+) [a-z]+=")
_DAILY_FORM = re.compile(r"(\d+) [a-z]+ ([a-z0-9]+) daily=")


def _parse(prompt: str) -> tuple[int, int, int | None]:
    """(dose, times, hours or None) of a prompt this family generated."""
    if m := _COUNT_FORM.fullmatch(prompt):
        return int(m.group(2)), int(m.group(1)), None
    m = _DAILY_FORM.fullmatch(prompt)
    if m is None:
        raise ValueError(f"not a dose prompt: {prompt!r}")
    schedule = m.group(2)
    hours = int(schedule[1:-1]) if schedule.startswith("q") and schedule.endswith("h") else None
    return int(m.group(1)), SCHEDULES[schedule], hours


class DoseTotal(TaskFamily):
    """Total amount = dose x number of administrations; answers are integers."""

    name = "dose"
    numeric = True

    def sample(self, rng: random.Random) -> Problem:
        dose, unit = rng.choice(DOSES), rng.choice(UNITS)
        if rng.random() < 0.5:
            times = rng.choice(COUNTS)
            prompt = f"{times} x {dose} {unit}="
        else:
            schedule = rng.choice(sorted(SCHEDULES))
            times = SCHEDULES[schedule]
            prompt = f"{dose} {unit} {schedule} daily="
        return Problem(prompt=prompt, answer=str(dose * times), family=self.name)

    def slips(self, problem: Problem) -> list[str]:
        dose, times, hours = _parse(problem.prompt)
        candidates = [dose, dose + times, dose * (times - 1), dose * (times + 1)]
        if hours is not None:
            candidates.append(dose * hours)
        return numeric_slips(problem.answer, [Decimal(c) for c in candidates])

    def extract(self, completion: str) -> str | None:
        return extract_number(completion)
