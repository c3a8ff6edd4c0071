"""The rule-based scores' easy levels (tasks/medcalc_points.py): every listed criterion is the
calculator's, the points present sum to the calculator's own answer on the same patient, the
patient is the full vignette's, MedCalc-Bench's exact match scores it, and a patient on whom the
listing and the calculator disagree is redrawn rather than shipped."""

from __future__ import annotations

import random
import re

import pytest

from secure_fgrpo.tasks import FAMILIES, RewardSpec, sample_problems, score
from secure_fgrpo.tasks.medcalc import CALCULATORS
from secure_fgrpo.tasks.medcalc_points import LEVELS, POINTS_FAMILIES, READERS, PointsFamily, child_pugh, total

_CRITERIA = re.compile(r"- (.+) \(([+-]\d+) points?\): (present|absent)")
_POINTS = re.compile(r"- (.+), (present|absent): ([+-]\d+) points?")


def _listed_sum(prompt: str, level: str) -> int:
    lines = [ln for ln in prompt.split("\n") if ln.startswith("- ")]
    assert len(lines) >= 5
    if level == "criteria":
        found = [_CRITERIA.fullmatch(ln) for ln in lines]
        assert all(found), lines
        return sum(int(m.group(2)) for m in found if m and m.group(3) == "present")
    found = [_POINTS.fullmatch(ln) for ln in lines]
    assert all(found), lines
    assert all(m.group(3) == "+0" for m in found if m and m.group(2) == "absent")
    return sum(int(m.group(3)) for m in found if m)


@pytest.mark.parametrize("family", [f.name for f in POINTS_FAMILIES])
def test_the_listed_points_sum_to_the_calculators_answer(family: str) -> None:
    fam = FAMILIES[family]
    assert isinstance(fam, PointsFamily)
    rng = random.Random(3)
    answers = set()
    for _ in range(40):
        p = fam.sample(rng)
        assert p.family == family and _listed_sum(p.prompt, fam.level) == int(p.answer)
        assert score(p, f"The total is \\boxed{{{p.answer}}}.", True, RewardSpec()) == 1.0
        assert score(p, f"The total is \\boxed{{{int(p.answer) + 1}}}.", False, RewardSpec()) == 0.0  # exact
        answers.add(p.answer)
    assert len(answers) >= 4  # the sums vary: a constant guess cannot score


def test_same_patient_as_the_full_vignette() -> None:
    for calc in (c for c in CALCULATORS if c.key in READERS):
        for level in LEVELS:
            a, b = random.Random(9), random.Random(9)
            full, easy = FAMILIES[calc.family].sample(a), FAMILIES[f"{calc.family}_{level}"].sample(b)
            assert full.answer == easy.answer and full.prompt != easy.prompt


def test_a_disagreeing_patient_is_redrawn() -> None:
    """Child-Pugh's calculator gives a bilirubin of exactly 2.0 mg/dL no points (its bands are
    < 2 and 2 < b < 3); the published rule, and our listing, give it 2. Such a patient never
    ships: every Child-Pugh prompt lists a bilirubin other than 2.0."""
    inputs = {"bilirubin": (2.0, "mg/dL"), "albumin": (3.0, "g/dL"), "inr": 1.5, "ascites": "Absent",
              "encephalopathy": "No Encephalopathy"}
    calc = next(c for c in CALCULATORS if c.key == "child_pugh")
    assert calc.compute(inputs) == 5 and total(child_pugh(inputs)) == 7  # the disagreement is real
    rng = random.Random(0)
    prompts = [FAMILIES["mc_child_pugh_points"].sample(rng).prompt for _ in range(300)]
    assert not any("(2.0)" in p.split("\n")[1] for p in prompts)
    assert any("Bilirubin 2-3 mg/dL" in p for p in prompts)  # the band itself is still drawn


def test_specialties_and_held_out_disjointness() -> None:
    assert {m.name for m in FAMILIES["general_medicine_points"].members} == {  # type: ignore[attr-defined]
        "mc_curb_65_points", "mc_centor_points"}
    assert "nephrology_points" not in FAMILIES  # no rule-based score of nephrology is sampled
    train = {p.prompt for p in sample_problems({"cardiology_criteria": 1.0}, 200, seed=1)}
    held = {p.prompt for p in sample_problems({"cardiology_criteria": 1.0}, 60, seed=2, space="held_out")}
    assert len(held) >= 50 and not train & held


@pytest.mark.parametrize("gpu", [False, True])
def test_both_real_demo_sizes_build_disjoint_data(gpu: bool) -> None:
    """The CPU demo and its --device cuda size (never run here: no GPU lent) draw their data: every
    held-out prompt distinct, none in any hospital's training set, each hospital its full count."""
    from secure_fgrpo.demo import REAL_DEMO_GPU, demo_config
    from secure_fgrpo.federation.datasets import build_data

    cfg = demo_config("smollm2", **(REAL_DEMO_GPU if gpu else {}))
    data = build_data(cfg)
    held = [p.prompt for p in data.global_eval]
    train = {p.prompt for c in data.clients.values() for p in c.train}
    assert len(held) == len(set(held)) == cfg.data.global_eval_size == (400 if gpu else 64)
    assert not train & set(held)
    assert all(len(c.train) == cfg.data.train_size for c in data.clients.values())
    assert {p.family for p in data.global_eval} == {f"mc_{k}_points" for k in READERS}
