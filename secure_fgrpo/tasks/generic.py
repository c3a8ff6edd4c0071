"""Generic answer kinds for an institution's own data: they extract and score, never generate.

A hospital's JSONL says only what kind of answer each prompt has ("numeric", "yesno",
"choice"); these families give such rows an extractor, a reward and generic slips.
"""

from __future__ import annotations

import random
from decimal import Decimal

from secure_fgrpo.tasks.base import Problem, TaskFamily
from secure_fgrpo.tasks.formats import extract_number, extract_yesno, flip, numeric_slips


def _no_generator(name: str) -> NotImplementedError:
    return NotImplementedError(
        f"task family {name!r} has no generator: it only extracts and scores answers of "
        "problems loaded with secure_fgrpo.data.local.load_problems"
    )


class GenericNumeric(TaskFamily):
    """Any single decimal number; partial credit by relative error when the spec asks."""

    name = "numeric"
    numeric = True

    def sample(self, rng: random.Random) -> Problem:
        raise _no_generator(self.name)

    def slips(self, problem: Problem) -> list[str]:
        ref = Decimal(problem.answer)
        # User answers may be longer than the built-in limit, so no length cap here.
        return numeric_slips(problem.answer, [ref * 10, ref / 10, ref + 1, ref - 1], max_len=None)

    def extract(self, completion: str) -> str | None:
        return extract_number(completion)


class GenericYesNo(TaskFamily):
    """A ``yes``/``no`` answer; the slip is the opposite answer."""

    name = "yesno"
    numeric = False

    def sample(self, rng: random.Random) -> Problem:
        raise _no_generator(self.name)

    def slips(self, problem: Problem) -> list[str]:
        return [flip(problem.answer)]

    def extract(self, completion: str) -> str | None:
        return extract_yesno(completion)
