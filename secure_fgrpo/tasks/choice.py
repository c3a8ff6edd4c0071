"""Multiple choice: "fever? a)36.5 b)38.4 c)37.0=" -> "b".

Exactly one option is abnormal in the way the question names; the other two are drawn from
the normal range, so the answer is a function of the visible readings. The slips are the
other letters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from secure_fgrpo.tasks.base import Problem, TaskFamily
from secure_fgrpo.tasks.formats import extract_letter

LETTERS = "abc"


@dataclass(frozen=True)
class Finding:
    """A named abnormality: where its readings lie and where normal readings lie (scaled ints)."""

    name: str
    abnormal: tuple[int, int]
    normal: tuple[int, int]
    decimals: int = 0

    def show(self, scaled: int) -> str:
        if self.decimals == 0:
            return str(scaled)
        unit = 10**self.decimals
        return f"{scaled // unit}.{scaled % unit:0{self.decimals}d}"


# Three findings with well-separated ranges: learnable by a ~1M character model.
FINDINGS: tuple[Finding, ...] = (
    Finding("fever", (385, 405), (361, 372), 1),
    Finding("tachycardia", (115, 160), (60, 90)),
    Finding("hypotension", (60, 85), (105, 135)),
)


class MultipleChoice(TaskFamily):
    """Pick the one abnormal reading among three; answers are ``a``, ``b`` or ``c``."""

    name = "choice"
    numeric = False

    def __init__(self, letters: str = LETTERS) -> None:
        self.letters = letters

    def sample(self, rng: random.Random) -> Problem:
        finding = rng.choice(FINDINGS)
        correct = rng.randint(*finding.abnormal)
        normal = rng.sample(range(finding.normal[0], finding.normal[1] + 1), len(self.letters) - 1)
        slot = rng.randrange(len(self.letters))
        values = [*normal[:slot], correct, *normal[slot:]]
        options = " ".join(f"{letter}){finding.show(v)}" for letter, v in zip(self.letters, values, strict=True))
        prompt = f"{finding.name}? {options}="
        return Problem(prompt=prompt, answer=self.letters[slot], family=self.name)

    def slips(self, problem: Problem) -> list[str]:
        return [letter for letter in self.letters if letter != problem.answer]

    def extract(self, completion: str) -> str | None:
        return extract_letter(completion, self.letters)
