"""Clinical calculations on the MedCalc-Bench calculators (``medcalc-bench``, the 'real' extra).

Each calculator is a family ``mc_<key>``: a vignette (tasks/medcalc_vignettes.py) asks for one
value, the exact answer comes from the calculator, and correctness follows MedCalc-Bench's own
rule: a rule-based score must match exactly after rounding to an integer, a formula's value must
lie within ±5% of the reference. The final answer must be boxed (``\\boxed{23.5}``) or tagged
(``<answer>23.5</answer>``): that is what the format term rewards. Correctness reads that final
answer, or failing one the last number of the completion: a small model rarely boxes at first,
and reading its plain answers gives GRPO groups reward variance from the first round (a
completion full of numbers gains nothing: only the last one counts).
Specialty families (``cardiology``, ``nephrology``, ``hepatology``, ``general_medicine``) draw
uniformly from their calculators, so institutions get non-IID calculator mixes by specialty.
"""

from __future__ import annotations

import importlib
import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from secure_fgrpo.tasks import medcalc_vignettes as v
from secure_fgrpo.tasks.base import Problem, TaskFamily
from secure_fgrpo.tasks.formats import canonical_number, numeric_slips

Kind = Literal["rule", "formula"]
FORMULA_TOLERANCE = 0.05  # MedCalc-Bench: lower/upper limits are the reference -/+ 5%
INSTRUCTION = "Put the final answer, a single number, in \\boxed{}."

_FINAL = re.compile(r"\\boxed\{([^{}]*)\}|<answer>(.*?)</answer>", re.S)
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_LEADING_NUMBER = re.compile(rf"\s*({_NUMBER})(?![\d.])")
_ANY_NUMBER = re.compile(rf"(?<![\w.])({_NUMBER})")


@dataclass(frozen=True)
class Calculator:
    key: str
    question: str  # what the vignette asks for
    module: str  # medcalc.<module>
    function: str
    kind: Kind
    specialty: str
    write: v.Writer

    @property
    def family(self) -> str:
        return f"mc_{self.key}"

    def compute(self, inputs: v.Inputs) -> float:
        """The calculator's exact answer (imported on first use: medcalc-bench is optional)."""
        try:
            mod = importlib.import_module(f"medcalc.{self.module}")
        except ImportError:  # a ValueError so the CLI reports it in one line, before any round
            raise ValueError(f"task family {self.family!r} needs the MedCalc-Bench calculators: "
                               "pip install 'secure_fgrpo[real]'") from None
        return float(getattr(mod, self.function)(inputs)["Answer"])


CALCULATORS: tuple[Calculator, ...] = (
    Calculator("map", "What is the patient's mean arterial pressure in mm Hg?", "mean_arterial_pressure",
               "mean_arterial_pressure_explanation", "formula", "cardiology", v.mean_arterial_pressure),
    Calculator("cha2ds2_vasc", "What is the patient's CHA2DS2-VASc score?", "cha2ds2_vasc_score",
               "generate_cha2ds2_vasc_explanation", "rule", "cardiology", v.cha2ds2_vasc),
    Calculator("qtc_bazett", "What is the patient's corrected QT interval (Bazett) in ms?", "qt_calculator_bazett",
               "bazett_calculator_explanation", "formula", "cardiology", v.qtc_bazett),
    Calculator("anion_gap", "What is the patient's anion gap in mEq/L?", "anion_gap",
               "compute_anion_gap_explanation", "formula", "nephrology", v.anion_gap),
    Calculator("delta_gap", "What is the patient's delta gap in mEq/L?", "delta_gap",
               "compute_delta_gap_explanation", "formula", "nephrology", v.delta_gap),
    Calculator("serum_osm", "What is the patient's calculated serum osmolality in mOsm/kg?", "sOsm",
               "compute_serum_osmolality_explanation", "formula", "nephrology", v.serum_osmolality),
    Calculator("fib4", "What is the patient's Fibrosis-4 (FIB-4) index?", "fibrosis_4",
               "compute_fib4_explanation", "formula", "hepatology", v.fib4),
    Calculator("child_pugh", "What is the patient's Child-Pugh score?", "child_pugh_score",
               "compute_child_pugh_score_explanation", "rule", "hepatology", v.child_pugh),
    Calculator("bmi", "What is the patient's body mass index in kg/m^2?", "bmi_calculator",
               "bmi_calculator_explanation", "formula", "general_medicine", v.bmi),
    Calculator("ibw", "What is the patient's ideal body weight in kg (Devine formula)?", "ideal_body_weight",
               "ibw_explanation", "formula", "general_medicine", v.ideal_body_weight),
    Calculator("curb_65", "What is the patient's CURB-65 score?", "curb_65",
               "curb_65_explanation", "rule", "general_medicine", v.curb_65),
    Calculator("centor", "What is the patient's Centor score (modified, McIsaac)?", "centor_score",
               "compute_centor_score_explanation", "rule", "general_medicine", v.centor),
)
SPECIALTIES: tuple[str, ...] = ("cardiology", "nephrology", "hepatology", "general_medicine")


def _canonical(text: str) -> str | None:
    try:
        return canonical_number(Decimal(text))
    except InvalidOperation:  # pragma: no cover - the regexes admit only valid literals
        return None


def extract_final(completion: str) -> str | None:
    """The canonical number leading the last ``\\boxed{..}`` or ``<answer>..</answer>`` (a unit
    may follow it), else None."""
    found = _FINAL.findall(completion)
    if not found:
        return None
    boxed, tagged = found[-1]
    m = _LEADING_NUMBER.match(boxed or tagged)
    return _canonical(m.group(1)) if m else None


def extract_answer(completion: str) -> str | None:
    """The final answer if there is one, else the last number in the completion, else None."""
    if _FINAL.search(completion):
        return extract_final(completion)
    numbers = _ANY_NUMBER.findall(completion)
    return _canonical(numbers[-1]) if numbers else None


def medcalc_correct(kind: Kind, predicted: float, reference: float) -> bool:
    """MedCalc-Bench's rule: rule-based scores exactly (after rounding), formulas within ±5%."""
    if kind == "rule":
        return round(predicted) == round(reference)
    lo, hi = sorted((reference * (1 - FORMULA_TOLERANCE), reference * (1 + FORMULA_TOLERANCE)))
    return lo <= predicted <= hi


class MedCalcFamily(TaskFamily):
    """One calculator: a vignette, its question and the boxed-answer instruction."""

    numeric = True

    def __init__(self, calc: Calculator) -> None:
        self.calc = calc
        self.name = calc.family

    def sample(self, rng: random.Random) -> Problem:
        inputs, vignette = self.calc.write(rng)
        answer = canonical_number(Decimal(repr(round(self.calc.compute(inputs), 3))))
        return Problem(prompt=f"{vignette}\n{self.calc.question} {INSTRUCTION}", answer=answer, family=self.name)

    def slips(self, problem: Problem) -> list[str]:
        ref = Decimal(problem.answer)
        if self.calc.kind == "rule":
            return numeric_slips(problem.answer, [ref + 1, ref - 1, ref + 2], max_len=None)
        return numeric_slips(problem.answer, [(ref * Decimal("1.2")).quantize(Decimal("0.1")),
                                              (ref * Decimal("0.8")).quantize(Decimal("0.1"))], max_len=None)

    def extract(self, completion: str) -> str | None:
        return extract_answer(completion)

    def well_formed(self, completion: str) -> bool:
        return extract_final(completion) is not None

    def correctness(self, problem: Problem, predicted: str | None, partial: bool) -> float:
        """1.0 within MedCalc-Bench's tolerance; with ``partial``, relative-error credit outside it."""
        if predicted is None:
            return 0.0
        p, r = float(predicted), float(problem.answer)
        if medcalc_correct(self.calc.kind, p, r):
            return 1.0
        if partial and r != 0:
            return max(0.0, 1.0 - abs(p - r) / abs(r))
        return 0.0


class SpecialtyFamily(TaskFamily):
    """A specialty's calculators, uniformly. Its problems carry the calculator's family name, so
    scoring is the calculator's; this family only samples."""

    numeric = True

    def __init__(self, specialty: str, members: tuple[MedCalcFamily, ...]) -> None:
        self.name, self.members = specialty, members

    def sample(self, rng: random.Random) -> Problem:
        return rng.choice(self.members).sample(rng)

    def _member(self, problem: Problem) -> MedCalcFamily:
        for m in self.members:
            if m.name == problem.family:
                return m
        raise ValueError(f"problem of family {problem.family!r} is not a {self.name} calculation")

    def slips(self, problem: Problem) -> list[str]:
        return self._member(problem).slips(problem)

    def extract(self, completion: str) -> str | None:
        return extract_answer(completion)

    def well_formed(self, completion: str) -> bool:
        return extract_final(completion) is not None

    def correctness(self, problem: Problem, predicted: str | None, partial: bool) -> float:
        return self._member(problem).correctness(problem, predicted, partial)


CALCULATOR_FAMILIES: tuple[MedCalcFamily, ...] = tuple(MedCalcFamily(c) for c in CALCULATORS)
SPECIALTY_FAMILIES: tuple[SpecialtyFamily, ...] = tuple(
    SpecialtyFamily(s, tuple(f for f in CALCULATOR_FAMILIES if f.calc.specialty == s)) for s in SPECIALTIES)
