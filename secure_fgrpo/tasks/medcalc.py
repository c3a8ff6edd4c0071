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

Two difficulty levels. The full vignette (``mc_<key>``, ``<specialty>``) is a patient story with
distractors. The first level (``mc_<key>_easy``, ``<specialty>_easy``; seven formula calculators)
states the formula's inputs plainly, then the formula itself, then asks for one number: zero-shot a
135M model almost never finishes a full vignette's answer in a short budget, so its GRPO groups
have no reward variance there; at the first level it sometimes does (benchmarks/medcalc_baseline.py).
The answer is the calculator's and the correctness rule the same at both levels.
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
EASY_INSTRUCTION = "Reply with one short sentence that ends with the number in \\boxed{}."
EASY = "_easy"  # the suffix of a first-level family's name

_FINAL = re.compile(r"\\boxed\{([^{}]*)\}|<answer>(.*?)</answer>", re.DOTALL)
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
    formula: str = ""  # the first level states it; "" = no first level for this calculator
    plain: v.Plain | None = None  # the first level's plain statement of the sampled inputs

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
               "mean_arterial_pressure_explanation", "formula", "cardiology", v.mean_arterial_pressure,
               "MAP = (systolic + 2 x diastolic) / 3.", v.plain_map),
    Calculator("cha2ds2_vasc", "What is the patient's CHA2DS2-VASc score?", "cha2ds2_vasc_score",
               "generate_cha2ds2_vasc_explanation", "rule", "cardiology", v.cha2ds2_vasc),
    Calculator("qtc_bazett", "What is the patient's corrected QT interval (Bazett) in ms?", "qt_calculator_bazett",
               "bazett_calculator_explanation", "formula", "cardiology", v.qtc_bazett,
               "QTc = QT / sqrt(RR), where RR = 60 / heart rate, in seconds.", v.plain_qtc),
    Calculator("anion_gap", "What is the patient's anion gap in mEq/L?", "anion_gap",
               "compute_anion_gap_explanation", "formula", "nephrology", v.anion_gap,
               "Anion gap = Na - (Cl + HCO3).", v.plain_electrolytes),
    Calculator("delta_gap", "What is the patient's delta gap in mEq/L?", "delta_gap",
               "compute_delta_gap_explanation", "formula", "nephrology", v.delta_gap),
    Calculator("serum_osm", "What is the patient's calculated serum osmolality in mOsm/kg?", "sOsm",
               "compute_serum_osmolality_explanation", "formula", "nephrology", v.serum_osmolality,
               "Serum osmolality = 2 x Na + BUN / 2.8 + glucose / 18.", v.plain_osmolality),
    Calculator("fib4", "What is the patient's Fibrosis-4 (FIB-4) index?", "fibrosis_4",
               "compute_fib4_explanation", "formula", "hepatology", v.fib4,
               "FIB-4 = (age x AST) / (platelets x sqrt(ALT)).", v.plain_fib4),
    Calculator("child_pugh", "What is the patient's Child-Pugh score?", "child_pugh_score",
               "compute_child_pugh_score_explanation", "rule", "hepatology", v.child_pugh),
    Calculator("bmi", "What is the patient's body mass index in kg/m^2?", "bmi_calculator",
               "bmi_calculator_explanation", "formula", "general_medicine", v.bmi,
               "BMI = weight / height^2, in kg and metres.", v.plain_bmi),
    Calculator("ibw", "What is the patient's ideal body weight in kg (Devine formula)?", "ideal_body_weight",
               "ibw_explanation", "formula", "general_medicine", v.ideal_body_weight,
               "IBW = 50 kg (male) or 45.5 kg (female) + 2.3 kg per inch of height over 60 inches "
               "(1 inch = 2.54 cm).", v.plain_ibw),
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
    """One calculator at one level: a vignette (or, at the first level, the plain inputs and the
    formula), its question and the boxed-answer instruction."""

    numeric = True

    def __init__(self, calc: Calculator, easy: bool = False) -> None:
        if easy and calc.plain is None:
            raise ValueError(f"{calc.family} has no first difficulty level")
        self.calc, self.easy = calc, easy
        self.name = calc.family + (EASY if easy else "")

    def sample(self, rng: random.Random) -> Problem:
        inputs, vignette = self.calc.write(rng)
        answer = canonical_number(Decimal(repr(round(self.calc.compute(inputs), 3))))
        if self.easy and self.calc.plain is not None:
            prompt = f"{self.calc.plain(inputs)}\n{self.calc.formula}\n{self.calc.question} {EASY_INSTRUCTION}"
        else:
            prompt = f"{vignette}\n{self.calc.question} {INSTRUCTION}"
        return Problem(prompt=prompt, answer=answer, family=self.name)

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


CALCULATOR_FAMILIES: tuple[MedCalcFamily, ...] = (
    *(MedCalcFamily(c) for c in CALCULATORS), *(MedCalcFamily(c, easy=True) for c in CALCULATORS if c.plain))
SPECIALTY_FAMILIES: tuple[SpecialtyFamily, ...] = tuple(
    SpecialtyFamily(s + (EASY if easy else ""),
                    tuple(f for f in CALCULATOR_FAMILIES if f.calc.specialty == s and f.easy == easy))
    for easy in (False, True) for s in SPECIALTIES)
