"""Task families: formats, answers checked by independent oracles, slips, sampling, reward."""

from __future__ import annotations

import random
import re
from collections import Counter
from decimal import Decimal

import pytest

from secure_fgrpo.tasks import (
    ALPHABET,
    FAMILIES,
    GENERATED_FAMILIES,
    Problem,
    RewardSpec,
    get_family,
    sample_problems,
    score,
    warm_start_target,
)
from secure_fgrpo.tasks.vitals import RULES

N_PER_FAMILY = 2000


@pytest.fixture(scope="module")
def samples() -> dict[str, list[Problem]]:
    return {name: sample_problems([name], N_PER_FAMILY, seed=7) for name in GENERATED_FAMILIES}


# ---- independent oracles: recompute each answer from the prompt text alone ----

_UNIT_FACTORS = {
    ("g", "mg"): Decimal(1000), ("kg", "g"): Decimal(1000), ("mg", "mcg"): Decimal(1000),
    ("l", "ml"): Decimal(1000), ("cm", "mm"): Decimal(10), ("m", "cm"): Decimal(100),
}


def _oracle_unit(prompt: str) -> Decimal:
    m = re.fullmatch(r"([0-9.]+) ([a-z]+) to ([a-z]+)=", prompt)
    assert m, prompt
    value, src, dst = Decimal(m.group(1)), m.group(2), m.group(3)
    if (src, dst) in _UNIT_FACTORS:
        return value * _UNIT_FACTORS[(src, dst)]
    return value / _UNIT_FACTORS[(dst, src)]


def _oracle_vitals(prompt: str) -> str:
    m = re.fullmatch(r"[a-z0-9]+ ([0-9.]+) (>=|<=|>|<)([0-9.]+)\?=", prompt)
    assert m, prompt
    v, op, t = Decimal(m.group(1)), m.group(2), Decimal(m.group(3))
    result = {">": v > t, ">=": v >= t, "<": v < t, "<=": v <= t}[op]
    return "yes" if result else "no"


_PER_DAY = {"bid": 2, "tid": 3, "qid": 4, "q4h": 6, "q6h": 4, "q8h": 3, "q12h": 2}


def _oracle_dose(prompt: str) -> int:
    if m := re.fullmatch(r"(\d) x (\d+) [a-z]+=", prompt):
        return int(m.group(1)) * int(m.group(2))
    m = re.fullmatch(r"(\d+) [a-z]+ ([a-z0-9]+) daily=", prompt)
    assert m, prompt
    return int(m.group(1)) * _PER_DAY[m.group(2)]


# Which readings count as the named finding (clinical cutoffs, written independently).
_ABNORMAL = {
    "fever": lambda v: v >= 38, "hypothermia": lambda v: v < 35,
    "tachycardia": lambda v: v > 100, "bradycardia": lambda v: v < 60,
    "hypotension": lambda v: v < 90, "hypertension": lambda v: v >= 140,
    "hypoxia": lambda v: v < 92, "tachypnea": lambda v: v > 20,
    "hypoglycemia": lambda v: v < 70, "hyperglycemia": lambda v: v > 180,
    "hyperkalemia": lambda v: v > 5.0, "hypokalemia": lambda v: v < 3.5,
    "hyponatremia": lambda v: v < 135,
}


def _oracle_choice(prompt: str) -> str:
    m = re.fullmatch(r"([a-z]+)\? a\)([0-9.]+) b\)([0-9.]+) c\)([0-9.]+)=", prompt)
    assert m, prompt
    test = _ABNORMAL[m.group(1)]
    hits = [letter for letter, v in zip("abc", m.groups()[1:], strict=True) if test(float(v))]
    assert len(hits) == 1, prompt
    return hits[0]


def test_answers_match_independent_oracles(samples: dict[str, list[Problem]]) -> None:
    for p in samples["unit"]:
        assert Decimal(p.answer) == _oracle_unit(p.prompt), p
    for p in samples["vitals"]:
        assert p.answer == _oracle_vitals(p.prompt), p
    for p in samples["dose"]:
        assert int(p.answer) == _oracle_dose(p.prompt), p
    for p in samples["choice"]:
        assert p.answer == _oracle_choice(p.prompt), p


def test_known_examples() -> None:
    assert _oracle_unit("3 g to mg=") == 3000
    unit = get_family("unit")
    assert unit.slips(Problem("3 g to mg=", "3000", "unit"))[0] == "3"
    assert "30000" in unit.slips(Problem("3 g to mg=", "3000", "unit"))
    dose = get_family("dose")
    assert dose.slips(Problem("2 x 250 mg=", "500", "dose")) == ["250", "252", "750"]
    assert "1500" in dose.slips(Problem("250 mg q6h daily=", "1000", "dose"))  # hours as count
    assert get_family("vitals").slips(Problem("hr 112 >100?=", "yes", "vitals")) == ["no"]
    assert get_family("choice").slips(Problem("fever? a)36.5 b)38.4 c)37.0=", "b", "choice")) == ["a", "c"]


@pytest.mark.parametrize("name", GENERATED_FAMILIES)
def test_prompt_and_answer_format(name: str, samples: dict[str, list[Problem]]) -> None:
    family = get_family(name)
    answers_by_prompt: dict[str, str] = {}
    for p in samples[name]:
        assert p.family == name
        assert set(p.prompt) <= set(ALPHABET), p.prompt
        assert len(p.prompt) <= 40 and p.prompt.endswith("="), p.prompt
        assert len(p.answer) in range(1, 6) and set(p.answer) <= set(ALPHABET), p.answer
        assert family.extract(p.answer) == p.answer  # answers are canonical
        # The answer is a function of the prompt: a repeated prompt never changes answer.
        assert answers_by_prompt.setdefault(p.prompt, p.answer) == p.answer


@pytest.mark.parametrize("name", GENERATED_FAMILIES)
def test_slips_are_wellformed_wrong_answers(name: str, samples: dict[str, list[Problem]]) -> None:
    family = get_family(name)
    for p in samples[name]:
        slips = family.slips(p)
        assert slips, p
        assert p.answer not in slips and len(set(slips)) == len(slips), (p, slips)
        for s in slips:
            assert len(s) in range(1, 6) and set(s) <= set(ALPHABET), (p, s)
            assert family.extract(s) == s, (p, s)
            assert family.correctness(p, s, partial=False) == 0.0


def test_labels_are_balanced(samples: dict[str, list[Problem]]) -> None:
    yes = sum(p.answer == "yes" for p in samples["vitals"]) / N_PER_FAMILY
    assert 0.45 < yes < 0.55
    letters = Counter(p.answer for p in samples["choice"])
    assert set(letters) == {"a", "b", "c"} and min(letters.values()) > N_PER_FAMILY / 3 * 0.85


def test_every_vitals_rule_has_both_answers() -> None:
    for vital, op, cutoff in RULES:
        values = range(vital.low, vital.high + 1)
        prompts = (f"{vital.name} {vital.show(v)} {op}{vital.show(cutoff)}?=" for v in values)
        outcomes = {_oracle_vitals(prompt) for prompt in prompts}
        assert outcomes == {"yes", "no"}, (vital.name, op, cutoff)


def test_extractors_normalise_and_reject() -> None:
    num = get_family("unit")
    assert num.extract(" 0.50\n") == "0.5"
    assert num.extract(".5") == "0.5"
    assert num.extract("007") == "7"
    assert num.extract("3000.0") == "3000"
    assert num.extract("-0") == "0"
    for bad in ("", " ", "abc", "1e3", "3,000", "5 mg", "1.2.3", "."):
        assert num.extract(bad) is None, bad
    yn = get_family("vitals")
    assert yn.extract(" yes ") == "yes" and yn.extract("No") == "no"
    assert yn.extract("maybe") is None and yn.extract("yes no") is None
    ch = get_family("choice")
    assert ch.extract("b") == "b" and ch.extract(" C") == "c"
    assert ch.extract("d") is None and ch.extract("ab") is None and ch.extract("") is None


def test_sample_problems_is_deterministic_and_follows_the_mix() -> None:
    a = sample_problems({"unit": 1.0, "dose": 3.0}, 400, seed=3)
    assert a == sample_problems({"unit": 1.0, "dose": 3.0}, 400, seed=3)
    assert a != sample_problems({"unit": 1.0, "dose": 3.0}, 400, seed=4)
    counts = Counter(p.family for p in a)
    assert set(counts) == {"unit", "dose"} and 0.65 < counts["dose"] / 400 < 0.85
    only = sample_problems({"vitals": 1.0, "choice": 0.0}, 100, seed=1)
    assert {p.family for p in only} == {"vitals"}
    every = sample_problems(list(GENERATED_FAMILIES), 400, seed=0)
    assert {p.family for p in every} == set(GENERATED_FAMILIES)
    assert sample_problems("choice", 5, seed=0) == sample_problems(["choice"], 5, seed=0)


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match="'bogus'"):
        get_family("bogus")
    with pytest.raises(ValueError, match="'bogus'"):
        sample_problems(["unit", "bogus"], 3, seed=0)
    with pytest.raises(ValueError, match="weight"):
        sample_problems({"unit": -1.0, "dose": 1.0}, 3, seed=0)
    with pytest.raises(ValueError, match="zero"):
        sample_problems({"unit": 0.0}, 3, seed=0)
    for generic in ("numeric", "yesno"):
        with pytest.raises(NotImplementedError, match="load_problems"):
            FAMILIES[generic].sample(random.Random(0))


def test_generic_families_score_user_answers() -> None:
    p = Problem("creatinine clearance?", "87.5", "numeric")
    assert score(p, "87.50", True, RewardSpec()) == 1.0
    slips = FAMILIES["numeric"].slips(p)
    assert slips and "87.5" not in slips and all(FAMILIES["numeric"].extract(s) == s for s in slips)
    q = Problem("sepsis?", "no", "yesno")
    assert FAMILIES["yesno"].slips(q) == ["yes"]
    assert score(q, "no", True, RewardSpec(scale=10)) == 10.0
    assert FAMILIES["numeric"].slips(Problem("x", "0", "numeric"))  # never empty, even for zero


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_score_formula(scale: float) -> None:
    p = Problem("2 x 250 mg=", "500", "dose")
    exact = RewardSpec(scale=scale)
    assert score(p, "500", True, exact) == scale
    assert score(p, " 500.0 ", True, exact) == scale
    assert score(p, "450", True, exact) == 0.0
    assert score(p, "500", False, exact) == 0.0  # no EOS: nothing, even if right
    partial = RewardSpec(scale=scale, partial=True)
    assert score(p, "450", True, partial) == pytest.approx(0.9 * scale)
    assert score(p, "1500", True, partial) == 0.0  # relative error clipped at 1
    assert score(p, "abc", True, partial) == 0.0
    fmt = RewardSpec(scale=scale, format_weight=1.0)
    assert score(p, "500", True, fmt) == pytest.approx(scale)
    assert score(p, "450", True, fmt) == pytest.approx(0.5 * scale)  # well formed, wrong
    assert score(p, "five hundred", True, fmt) == 0.0
    assert score(p, "450", False, fmt) == 0.0
    both = RewardSpec(scale=scale, partial=True, format_weight=0.25)
    assert score(p, "450", True, both) == pytest.approx(scale * (0.9 + 0.25) / 1.25)
    # Partial credit only on numeric families.
    v = Problem("hr 112 >100?=", "yes", "vitals")
    assert score(v, "no", True, partial) == 0.0
    assert score(v, "yes", True, partial) == scale


def test_warm_start_target_mixes_answer_and_slips(samples: dict[str, list[Problem]]) -> None:
    rng = random.Random(5)
    problems = samples["dose"][:500] * 4
    hits = 0
    for p in problems:
        target = warm_start_target(p, rng)
        if target == p.answer:
            hits += 1
        else:
            assert target in get_family("dose").slips(p)
    assert 0.35 < hits / len(problems) < 0.45
    p = samples["unit"][0]
    assert all(warm_start_target(p, rng, p_correct=1.0) == p.answer for _ in range(50))
    assert all(warm_start_target(p, rng, p_correct=0.0) != p.answer for _ in range(50))
    with pytest.raises(ValueError, match="p_correct"):
        warm_start_target(p, rng, p_correct=1.5)
