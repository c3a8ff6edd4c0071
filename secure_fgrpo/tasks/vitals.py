"""Vital-sign thresholds ("hr 112 >100?=" -> "yes"): compare the reading with the visible cutoff.

The cutoff is part of the prompt, so the answer is a comparison of two visible numbers; the
cutoffs are the usual clinical ones so the prompts read like a triage checklist. Half the
problems are "yes" by construction, so a constant answer earns only half the reward.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable
from dataclasses import dataclass

from secure_fgrpo.tasks.base import Problem, TaskFamily
from secure_fgrpo.tasks.formats import NO, YES, extract_yesno, flip

_OPS: dict[str, Callable[[int, int], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Vital:
    """A reading's name, plausible range and decimals; values are kept as scaled integers."""

    name: str
    low: int
    high: int
    decimals: int

    def show(self, scaled: int) -> str:
        if self.decimals == 0:
            return str(scaled)
        unit = 10**self.decimals
        return f"{scaled // unit}.{scaled % unit:0{self.decimals}d}"


_HR = Vital("hr", 30, 200, 0)
_SBP = Vital("sbp", 60, 220, 0)
_TEMP = Vital("temp", 340, 415, 1)
_SPO2 = Vital("spo2", 78, 100, 0)

# (vital, operator, cutoff as a scaled integer). One fixed, textbook cutoff per vital: a ~1M
# character model learns a fixed comparison; with many cutoffs per vital it stays at chance.
RULES: tuple[tuple[Vital, str, int], ...] = (
    (_HR, ">", 100),
    (_TEMP, ">=", 380),
    (_SBP, "<", 90),
    (_SPO2, "<", 92),
)


class VitalThreshold(TaskFamily):
    """Is the reading past the cutoff? Answers are ``yes``/``no``; the slip is the flip."""

    name = "vitals"
    numeric = False

    def sample(self, rng: random.Random) -> Problem:
        vital, op, cutoff = rng.choice(RULES)
        want = rng.random() < 0.5
        compare = _OPS[op]
        # Uniform over the readings on the wanted side; every rule has readings on both
        # sides inside the vital's range (checked in tests), so this terminates.
        value = rng.randint(vital.low, vital.high)
        while compare(value, cutoff) != want:
            value = rng.randint(vital.low, vital.high)
        prompt = f"{vital.name} {vital.show(value)} {op}{vital.show(cutoff)}?="
        return Problem(prompt=prompt, answer=YES if want else NO, family=self.name)

    def slips(self, problem: Problem) -> list[str]:
        return [flip(problem.answer)]

    def extract(self, completion: str) -> str | None:
        return extract_yesno(completion)
