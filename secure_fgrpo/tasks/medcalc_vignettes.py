"""Patient vignettes for the MedCalc-Bench calculators: clinically plausible parameter values
written the way clinicians write them (units, abbreviations), plus distractor facts a careful
reader must ignore. Each writer returns the calculator's inputs and the vignette text; the
exact answer always comes from the calculator itself (tasks/medcalc.py), never from here."""

from __future__ import annotations

import random
from collections.abc import Callable

Inputs = dict[str, object]
Writer = Callable[[random.Random], tuple[Inputs, str]]

_COMPLAINTS = ("fatigue", "shortness of breath", "a routine follow-up visit", "dizziness", "chest discomfort",
               "a cough", "abdominal pain", "swelling of both ankles", "a fall at home", "fever")
_MEDS = ("metformin", "lisinopril", "atorvastatin", "omeprazole", "levothyroxine", "amlodipine",
         "sertraline", "furosemide", "aspirin 81 mg daily", "no regular medications")
_DISTRACTORS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"Heart rate {r.randint(58, 118)} bpm.",
    lambda r: f"SpO2 {r.randint(91, 99)}% on room air.",
    lambda r: f"Hemoglobin {r.randint(95, 160) / 10:.1f} g/dL.",
    lambda r: f"Potassium {r.randint(33, 52) / 10:.1f} mEq/L.",
    lambda r: f"WBC {r.randint(45, 140) / 10:.1f} x10^9/L.",
    lambda r: f"TSH {r.randint(5, 45) / 10:.1f} mIU/L.",
    lambda r: f"HbA1c {r.randint(52, 98) / 10:.1f}%.",
    lambda r: f"Smoking history of {r.randint(5, 40)} pack-years." if r.random() < 0.5 else "Drinks no alcohol.",
)


def _person(r: random.Random, lo: int = 25, hi: int = 88) -> tuple[int, str, str, str]:
    """(age, 'Male'/'Female', noun, pronoun)."""
    age, male = r.randint(lo, hi), r.random() < 0.5
    return age, ("Male" if male else "Female"), ("man" if male else "woman"), ("He" if male else "She")


def _a(age: int) -> str:
    """The article before an age: "an 18-year-old", "an 80-year-old", "a 61-year-old"."""
    return "An" if str(age).startswith("8") or age in (11, 18) else "A"


def _opening(r: random.Random, age: int, noun: str) -> str:
    return (f"{_a(age)} {age}-year-old {noun} presents with {r.choice(_COMPLAINTS)}. "
            f"Current medications: {r.choice(_MEDS)}.")


def _noise(r: random.Random, k: int = 2) -> str:
    return " ".join(f(r) for f in r.sample(_DISTRACTORS, k))


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# --- cardiology -------------------------------------------------------------------------------

def mean_arterial_pressure(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _ = _person(r)
    sbp, dbp = r.randint(90, 180), r.randint(50, 105)
    dbp = min(dbp, sbp - 20)
    return ({"sys_bp": (sbp, "mm hg"), "dia_bp": (dbp, "mm hg")},
            _join(_opening(r, age, noun), f"Blood pressure is {sbp}/{dbp} mm Hg.", _noise(r)))


def cha2ds2_vasc(r: random.Random) -> tuple[Inputs, str]:
    age, sex, noun, pron = _person(r, 45, 90)
    history = {k: r.random() < 0.35 for k in ("chf", "hypertension", "stroke", "vascular_disease", "diabetes")}
    names = {"chf": "congestive heart failure", "hypertension": "hypertension", "stroke": "a prior ischemic stroke",
             "vascular_disease": "a prior myocardial infarction", "diabetes": "type 2 diabetes"}
    has = [names[k] for k, v in history.items() if v]
    listed = ", ".join(has[:-1]) + (" and " if len(has) > 1 else "") + has[-1] if has else ""
    hx = f"{pron} has a history of {listed}." if has else f"{pron} has no significant past medical history."
    inputs: Inputs = {"age": (age, "years"), "sex": sex, "tia": False, "thromboembolism": False, **history}
    return inputs, _join(f"{_a(age)} {age}-year-old {noun} is found to have new atrial fibrillation.", hx,
                         f"Blood pressure {r.randint(110, 150)}/{r.randint(60, 95)} mm Hg.", _noise(r))


def qtc_bazett(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _ = _person(r)
    hr, qt = r.randint(50, 120), r.randint(32, 48) * 10
    return ({"heart_rate": (hr, "beats per minute"), "qt_interval": (qt, "msec")},
            _join(_opening(r, age, noun), f"ECG shows sinus rhythm at {hr} bpm with a QT interval of {qt} ms.",
                  _noise(r)))


# --- nephrology -------------------------------------------------------------------------------

def _electrolytes(r: random.Random) -> tuple[int, int, int]:
    return r.randint(128, 148), r.randint(92, 112), r.randint(12, 30)


def anion_gap(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _ = _person(r)
    na, cl, hco3 = _electrolytes(r)
    return ({"sodium": (na, "mmol/L"), "chloride": (cl, "mmol/L"), "bicarbonate": (hco3, "mmol/L")},
            _join(_opening(r, age, noun), f"Labs: Na {na} mEq/L, Cl {cl} mEq/L, HCO3 {hco3} mEq/L.", _noise(r)))


def delta_gap(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _ = _person(r)
    na, cl, hco3 = _electrolytes(r)
    return ({"sodium": (na, "mmol/L"), "chloride": (cl, "mmol/L"), "bicarbonate": (hco3, "mmol/L")},
            _join(_opening(r, age, noun), f"Sodium {na} mmol/L, chloride {cl} mmol/L, bicarbonate {hco3} mmol/L.",
                  _noise(r)))


def serum_osmolality(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _ = _person(r)
    na, bun, glu = r.randint(128, 150), r.randint(8, 60), r.randint(70, 400)
    return ({"sodium": (na, "mmol/L"), "bun": (bun, "mg/dL"), "glucose": (glu, "mg/dL")},
            _join(_opening(r, age, noun), f"Na {na} mEq/L, BUN {bun} mg/dL, glucose {glu} mg/dL.", _noise(r)))


# --- hepatology -------------------------------------------------------------------------------

def fib4(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _ = _person(r, 30, 75)
    ast, alt, plt = r.randint(18, 160), r.randint(15, 180), r.randint(70, 380)
    return ({"age": (age, "years"), "ast": (ast, "U/L"), "alt": (alt, "U/L"),
             "platelet_count": (plt * 1000, "µL")},
            _join(_opening(r, age, noun), f"AST {ast} U/L, ALT {alt} U/L, platelets {plt},000/µL.", _noise(r)))


def child_pugh(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _pron = _person(r, 35, 80)
    bili, alb, inr = r.randint(5, 45) / 10, r.randint(20, 42) / 10, r.randint(9, 28) / 10
    ascites = r.choice(("Absent", "Slight", "Moderate"))
    enceph = r.choice(("No Encephalopathy", "Grade 1-2", "Grade 3-4"))
    asc_text = {"Absent": "no ascites", "Slight": "mild ascites", "Moderate": "moderate ascites"}[ascites]
    enc_text = {"No Encephalopathy": "no asterixis or confusion", "Grade 1-2": "grade 2 hepatic encephalopathy",
                "Grade 3-4": "grade 3 hepatic encephalopathy"}[enceph]
    return ({"bilirubin": (bili, "mg/dL"), "albumin": (alb, "g/dL"), "inr": inr, "ascites": ascites,
             "encephalopathy": enceph},
            _join(f"{_a(age)} {age}-year-old {noun} with alcohol-related cirrhosis is seen in clinic.",
                  f"Examination shows {asc_text} and {enc_text}.",
                  f"Total bilirubin {bili:.1f} mg/dL, albumin {alb:.1f} g/dL, INR {inr:.1f}.", _noise(r)))


# --- general medicine -------------------------------------------------------------------------

def bmi(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, _ = _person(r)
    h, w = r.randint(150, 195), r.randint(45, 130)
    return ({"height": (h, "cm"), "weight": (w, "kg")},
            _join(_opening(r, age, noun), f"Height {h} cm, weight {w} kg.", _noise(r)))


def ideal_body_weight(r: random.Random) -> tuple[Inputs, str]:
    age, sex, noun, _ = _person(r)
    h = r.randint(152, 195)
    return ({"height": (h, "cm"), "sex": sex},
            _join(_opening(r, age, noun), f"Height {h} cm, weight {r.randint(50, 120)} kg.", _noise(r)))


def curb_65(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, pron = _person(r, 30, 90)
    confused = r.random() < 0.3
    sbp, dbp, rr, bun = r.randint(82, 150), r.randint(48, 92), r.randint(14, 36), r.randint(8, 45)
    dbp = min(dbp, sbp - 20)
    mental = "is confused and disoriented to time" if confused else "is alert and oriented"
    return ({"age": (age, "years"), "confusion": confused, "sys_bp": (sbp, "mm hg"), "dia_bp": (dbp, "mm hg"),
             "respiratory_rate": (rr, "breaths per minute"), "bun": (bun, "mg/dL")},
            _join(f"{_a(age)} {age}-year-old {noun} presents with fever and a productive cough; chest X-ray shows a "
                  f"right lower lobe consolidation. {pron} {mental}.",
                  f"BP {sbp}/{dbp} mm Hg, respiratory rate {rr}/min, BUN {bun} mg/dL.", _noise(r)))


def centor(r: random.Random) -> tuple[Inputs, str]:
    age, _, noun, pron = _person(r, 5, 70)
    temp = r.randint(365, 395) / 10
    exudate, nodes, cough_absent = (r.random() < 0.5 for _ in range(3))
    findings = [("tonsillar exudates" if exudate else "no tonsillar exudate"),
                ("tender anterior cervical lymph nodes" if nodes else "no cervical lymphadenopathy")]
    return ({"age": (age, "years"), "temperature": (temp, "degrees celsius"), "exudate_swelling_tonsils": exudate,
             "tender_lymph_nodes": nodes, "cough_absent": cough_absent},
            _join(f"{_a(age)} {age}-year-old {noun} presents with a sore throat for two days.",
                  f"{pron} {'denies cough' if cough_absent else 'also has a cough'}.",
                  f"Temperature {temp:.1f} °C. Examination shows {findings[0]} and {findings[1]}.", _noise(r, 1)))


# --- the first difficulty level: the formula's inputs stated plainly, no story, no distractors ---
# Each takes the inputs a writer above sampled (same value distributions), so the two levels
# differ only in how much reading the question needs.

Plain = Callable[[Inputs], str]


def _val(inputs: Inputs, key: str) -> object:
    value = inputs[key]
    return value[0] if isinstance(value, tuple) else value


def plain_map(i: Inputs) -> str:
    return f"Blood pressure {_val(i, 'sys_bp')}/{_val(i, 'dia_bp')} mm Hg."


def plain_qtc(i: Inputs) -> str:
    return f"Heart rate {_val(i, 'heart_rate')} bpm, QT interval {_val(i, 'qt_interval')} ms."


def plain_electrolytes(i: Inputs) -> str:
    return f"Na {_val(i, 'sodium')} mEq/L, Cl {_val(i, 'chloride')} mEq/L, HCO3 {_val(i, 'bicarbonate')} mEq/L."


def plain_osmolality(i: Inputs) -> str:
    return f"Na {_val(i, 'sodium')} mEq/L, BUN {_val(i, 'bun')} mg/dL, glucose {_val(i, 'glucose')} mg/dL."


def plain_fib4(i: Inputs) -> str:
    plt = int(_val(i, "platelet_count")) // 1000  # type: ignore[call-overload]
    return (f"Age {_val(i, 'age')} years, AST {_val(i, 'ast')} U/L, ALT {_val(i, 'alt')} U/L, "
            f"platelets {plt} x10^9/L.")


def plain_bmi(i: Inputs) -> str:
    return f"Height {_val(i, 'height')} cm, weight {_val(i, 'weight')} kg."


def plain_ibw(i: Inputs) -> str:
    return f"{_val(i, 'sex')}, height {_val(i, 'height')} cm."
