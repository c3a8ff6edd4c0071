"""The rule-based scores at two easy levels, where a 135M model sometimes succeeds (GRPO needs
groups whose rewards differ): the criteria already read off the patient, leaving only the sum.

- ``mc_<key>_criteria``: each criterion as MedCalc-Bench's calculator defines it, with its points
  and whether this patient meets it ("Age 75 or older (+2 points): present"); a banded criterion
  (age, bilirubin, ...) shows the band the patient falls in. The model adds the points present.
- ``mc_<key>_points``: the same lines with the points this patient gets ("... present: 2 points"):
  only the addition is left.

The patient is the full vignette's (same sampler, same inputs), the answer is the calculator's
own on those inputs, and the listed points must sum to it: a patient on whom our reading of the
criteria and the calculator disagree is redrawn, never shipped (Child-Pugh's calculator gives a
bilirubin of exactly 2.0 mg/dL no points; the published rule gives 2). Scoring is MedCalc-Bench's
exact match for integer scores (tasks/medcalc.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

from secure_fgrpo.tasks import medcalc_vignettes as v
from secure_fgrpo.tasks.base import Problem
from secure_fgrpo.tasks.formats import canonical_number
from secure_fgrpo.tasks.medcalc import (
    CALCULATORS,
    EASY_INSTRUCTION,
    SPECIALTIES,
    Calculator,
    MedCalcFamily,
    SpecialtyFamily,
)

Criterion = tuple[str, int, bool]  # (the criterion as the patient meets it or not, its points, met)
Reader = Callable[[v.Inputs], list[Criterion]]
LEVELS: tuple[str, ...] = ("criteria", "points")
_MAX_REDRAWS = 100


def _points(n: int) -> str:
    return f"{n:+d} point{'' if abs(n) == 1 else 's'}"


def _band(value: float, bands: tuple[tuple[float, str, int], ...]) -> tuple[str, int]:
    """The (label, points) of the first band whose upper bound exceeds ``value``."""
    for upper, label, pts in bands:
        if value < upper:
            return label, pts
    raise ValueError(f"{value} lies above every band")  # pragma: no cover - the last bound is inf


def cha2ds2_vasc(i: v.Inputs) -> list[Criterion]:
    age = float(v._val(i, "age"))  # type: ignore[arg-type]
    band, pts = _band(age, ((65, "Age under 65", 0), (75, "Age 65-74", 1), (float("inf"), "Age 75 or older", 2)))
    female = i["sex"] == "Female"
    return [(f"{band} ({age:.0f} years)", pts, True), ("Female sex", 1, female),
            ("Congestive heart failure", 1, bool(i["chf"])), ("Hypertension", 1, bool(i["hypertension"])),
            ("Prior stroke, TIA or thromboembolism", 2, bool(i["stroke"] or i["tia"] or i["thromboembolism"])),
            ("Vascular disease (prior MI, PAD, aortic plaque)", 1, bool(i["vascular_disease"])),
            ("Diabetes", 1, bool(i["diabetes"]))]


def child_pugh(i: v.Inputs) -> list[Criterion]:
    bili, alb, inr = (float(v._val(i, k)) for k in ("bilirubin", "albumin", "inr"))  # type: ignore[arg-type]
    b = _band(bili, ((2, "under 2 mg/dL", 1), (3, "2-3 mg/dL", 2), (float("inf"), "3 mg/dL or more", 3)))
    a = _band(-alb, ((-3.5, "over 3.5 g/dL", 1), (-2.8, "2.8-3.5 g/dL", 2), (float("inf"), "2.8 g/dL or less", 3)))
    n = _band(inr, ((1.7, "under 1.7", 1), (2.3001, "1.7-2.3", 2), (float("inf"), "over 2.3", 3)))
    asc = {"Absent": 1, "Slight": 2, "Moderate": 3}[str(i["ascites"])]
    enc = {"No Encephalopathy": 1, "Grade 1-2": 2, "Grade 3-4": 3}[str(i["encephalopathy"])]
    return [(f"Bilirubin {b[0]} ({bili:.1f})", b[1], True), (f"Albumin {a[0]} ({alb:.1f})", a[1], True),
            (f"INR {n[0]} ({inr:.1f})", n[1], True), (f"Ascites {str(i['ascites']).lower()}", asc, True),
            (f"Encephalopathy: {str(i['encephalopathy']).lower()}", enc, True)]


def curb_65(i: v.Inputs) -> list[Criterion]:
    age, bun, rr, sbp, dbp = (float(v._val(i, k))  # type: ignore[arg-type]
                              for k in ("age", "bun", "respiratory_rate", "sys_bp", "dia_bp"))
    return [("Confusion", 1, bool(i["confusion"])), (f"BUN over 19 mg/dL ({bun:.0f})", 1, bun > 19),
            (f"Respiratory rate 30/min or more ({rr:.0f})", 1, rr >= 30),
            (f"Systolic BP under 90 or diastolic 60 or less ({sbp:.0f}/{dbp:.0f})", 1, sbp < 90 or dbp <= 60),
            (f"Age 65 or older ({age:.0f})", 1, age >= 65)]


def centor(i: v.Inputs) -> list[Criterion]:
    age, temp = float(v._val(i, "age")), float(v._val(i, "temperature"))  # type: ignore[arg-type]
    band, pts = _band(age, ((3, "Age under 3", 0), (15, "Age 3-14", 1), (45, "Age 15-44", 0),
                            (float("inf"), "Age 45 or older", -1)))
    return [(f"{band} ({age:.0f} years)", pts, True), ("Exudate or swelling on tonsils", 1,
                                                        bool(i["exudate_swelling_tonsils"])),
            ("Tender or swollen anterior cervical nodes", 1, bool(i["tender_lymph_nodes"])),
            (f"Temperature over 38 °C ({temp:.1f})", 1, temp > 38), ("Cough absent", 1, bool(i["cough_absent"]))]


READERS: dict[str, Reader] = {"cha2ds2_vasc": cha2ds2_vasc, "child_pugh": child_pugh, "curb_65": curb_65,
                              "centor": centor}
SCORE_NAMES = {"cha2ds2_vasc": "CHA2DS2-VASc", "child_pugh": "Child-Pugh", "curb_65": "CURB-65", "centor": "Centor"}


def total(criteria: list[Criterion]) -> int:
    return sum(pts for _, pts, met in criteria if met)


def render(criteria: list[Criterion], level: str) -> str:
    """One line per criterion: with its points and whether met (``criteria``), or with the points
    this patient gets (``points``)."""
    if level == "criteria":
        return "\n".join(f"- {text} ({_points(pts)}): {'present' if met else 'absent'}"
                         for text, pts, met in criteria)
    return "\n".join(f"- {text}, {'present' if met else 'absent'}: {_points(pts if met else 0)}"
                     for text, pts, met in criteria)


class PointsFamily(MedCalcFamily):
    """A rule-based score with the criteria read off the patient; the question is their sum."""

    def __init__(self, calc: Calculator, level: str) -> None:
        if calc.key not in READERS or level not in LEVELS:
            raise ValueError(f"{calc.family} has no {level!r} level")
        super().__init__(calc)
        self.level, self.read = level, READERS[calc.key]
        self.name = f"{calc.family}_{level}"

    def sample(self, rng: random.Random) -> Problem:
        score = SCORE_NAMES[self.calc.key]
        for _ in range(_MAX_REDRAWS):
            inputs, _story = self.calc.write(rng)
            answer, criteria = self.calc.compute(inputs), self.read(inputs)
            if total(criteria) == answer:
                head = f"{score} score, criterion by criterion, for this patient:"
                ask = f"What is the patient's {score} score (the sum of the points of the criteria present)?"
                prompt = f"{head}\n{render(criteria, self.level)}\n{ask} {EASY_INSTRUCTION}"
                return Problem(prompt=prompt, answer=canonical_number(Decimal(int(answer))), family=self.name)
        raise RuntimeError(f"{self.name}: the calculator and the criteria disagreed {_MAX_REDRAWS} times")


POINTS_FAMILIES: tuple[PointsFamily, ...] = tuple(
    PointsFamily(c, level) for level in LEVELS for c in CALCULATORS if c.key in READERS)
# A specialty's rule-based scores at each level (nephrology has none among the calculators sampled).
POINTS_SPECIALTIES: tuple[SpecialtyFamily, ...] = tuple(
    SpecialtyFamily(f"{s}_{level}", members)
    for level in LEVELS for s in SPECIALTIES
    if (members := tuple(f for f in POINTS_FAMILIES if f.level == level and f.calc.specialty == s)))
