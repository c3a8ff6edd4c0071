"""Clinical-calculation tasks: answers from the MedCalc-Bench calculators, MedCalc-Bench's
tolerance rule, the boxed-answer format term, specialty mixes and held-out disjointness."""

from __future__ import annotations

import random
import re
import sys

import pytest
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.data.partition import make_federated_data
from secure_fgrpo.tasks import CLINICAL_FAMILIES, FAMILIES, Problem, RewardSpec, sample_problems, score
from secure_fgrpo.tasks.medcalc import CALCULATORS, SPECIALTIES, extract_answer, extract_final, medcalc_correct


def _numbers(pattern: str, text: str) -> list[float]:
    m = re.search(pattern, text)
    assert m, (pattern, text)
    return [float(g) for g in m.groups()]


@pytest.mark.parametrize("family, pattern, formula", [
    ("mc_map", r"(\d+)/(\d+) mm Hg", lambda s, d: (2 * d + s) / 3),
    ("mc_anion_gap", r"Na (\d+) mEq/L, Cl (\d+) mEq/L, HCO3 (\d+)", lambda na, cl, b: na - cl - b),
    ("mc_delta_gap", r"Sodium (\d+) mmol/L, chloride (\d+) mmol/L, bicarbonate (\d+)", lambda na, cl,
     b: na - cl - b - 12),
    ("mc_bmi", r"Height (\d+) cm, weight (\d+) kg", lambda h, w: w / (h / 100) ** 2),
    ("mc_serum_osm", r"Na (\d+) mEq/L, BUN (\d+) mg/dL, glucose (\d+)", lambda na, bun, g: 2 * na + bun / 2.8 + g / 18),
])
def test_answers_are_the_calculators_and_match_the_vignette(family: str, pattern: str, formula) -> None:
    rng = random.Random(7)
    for _ in range(30):
        p = FAMILIES[family].sample(rng)
        assert p.family == family and p.prompt.endswith("\\boxed{}.")
        assert float(p.answer) == pytest.approx(formula(*_numbers(pattern, p.prompt)), rel=2e-3, abs=2e-3)


def test_rule_scores_follow_their_criteria() -> None:
    rng = random.Random(3)
    for _ in range(40):
        p = FAMILIES["mc_curb_65"].sample(rng)
        age, sbp, dbp, rr, bun = _numbers(r"(\d+)-year-old.*BP (\d+)/(\d+) mm Hg, respiratory rate (\d+)/min, "
                                          r"BUN (\d+)", p.prompt)
        expected = ((age >= 65) + ("confused" in p.prompt) + (bun > 19) + (rr >= 30)
                    + (sbp < 90 or dbp <= 60))
        assert int(p.answer) == expected, p.prompt


def test_medcalc_tolerance_rule() -> None:
    assert medcalc_correct("formula", 104.9, 100.0) and medcalc_correct("formula", 95.1, 100.0)
    assert not medcalc_correct("formula", 105.2, 100.0) and not medcalc_correct("formula", 94.8, 100.0)
    assert medcalc_correct("formula", -9.3, -9.0) and not medcalc_correct("formula", -8.0, -9.0)
    assert medcalc_correct("rule", 3.0, 3.0) and not medcalc_correct("rule", 4.0, 3.0)
    assert not medcalc_correct("rule", 3.6, 3.0)  # rounded first, as MedCalc-Bench does


def test_extraction_prefers_the_final_answer() -> None:
    assert extract_final("so \\boxed{23.5 kg/m^2}") == "23.5"
    assert extract_final("<answer> 7 </answer>") == "7"
    assert extract_final("\\boxed{1} then \\boxed{2.50}") == "2.5"
    assert extract_final("The MAP is 92 mm Hg.") is None and extract_final("\\boxed{high}") is None
    assert extract_answer("first 12, then 14 mEq/L") == "14"
    assert extract_answer("\\boxed{3}, not 5") == "3"
    assert extract_answer("no number here") is None


def test_reward_tolerance_format_term_and_partial_credit() -> None:
    p = Problem(prompt="q", answer="100", family="mc_map")
    fmt = RewardSpec(scale=10.0, format_weight=0.25)
    assert score(p, "MAP = \\boxed{103}", True, fmt) == pytest.approx(10.0)
    assert score(p, "The MAP is 103 mm Hg.", True, fmt) == pytest.approx(10.0 / 1.25)  # right, not boxed
    assert score(p, "\\boxed{120}", True, fmt) == pytest.approx(10.0 * 0.25 / 1.25)  # boxed, wrong
    assert score(p, "\\boxed{103}", False, fmt) == 0.0  # never finished
    assert score(p, "\\boxed{120}", True, RewardSpec(partial=True)) == pytest.approx(0.8)
    rule = Problem(prompt="q", answer="3", family="mc_cha2ds2_vasc")
    assert score(rule, "\\boxed{3}", True, RewardSpec()) == 1.0 and score(rule, "\\boxed{4}", True, RewardSpec()) == 0.0


def test_specialties_give_non_iid_calculator_mixes() -> None:
    mixes = {"a": {"cardiology": 1.0}, "b": {"nephrology": 0.7, "hepatology": 0.3}}
    fed = make_federated_data(mixes, train_size=60, eval_size=10, global_eval_size=20, seed=2)
    by = {c: {p.family for p in d.train} for c, d in fed.clients.items()}
    cardio = {c.family for c in CALCULATORS if c.specialty == "cardiology"}
    assert by["a"] == cardio
    assert by["b"] <= {c.family for c in CALCULATORS if c.specialty in ("nephrology", "hepatology")}
    assert not by["a"] & by["b"]
    for p in [q for d in fed.clients.values() for q in d.train + d.eval] + fed.global_eval:
        assert score(p, f"\\boxed{{{p.answer}}}", True, RewardSpec()) == 1.0  # scored by its calculator


def test_held_out_vignettes_are_disjoint_from_training() -> None:
    mixes = {s: {s: 1.0} for s in SPECIALTIES}
    fed = make_federated_data(mixes, train_size=80, eval_size=15, global_eval_size=40, seed=4)
    train = {p.prompt for d in fed.clients.values() for p in d.train}
    held = [p.prompt for d in fed.clients.values() for p in d.eval] + [p.prompt for p in fed.global_eval]
    assert len(held) == 4 * 15 + 40 and not train & set(held) and len(set(held)) == len(held)


def test_seeded_and_registered() -> None:
    assert sample_problems({"general_medicine": 1.0}, 5, seed=1) == sample_problems({"general_medicine": 1.0}, 5,
                                                                                    seed=1)
    assert set(SPECIALTIES) <= set(CLINICAL_FAMILIES)
    for name in CLINICAL_FAMILIES:
        p = FAMILIES[name].sample(random.Random(0))
        assert p.answer not in FAMILIES[name].slips(p)


def test_config_accepts_specialties_and_names_an_unknown_family() -> None:
    raw = small_run(**{"clients": [{"name": "x", "families": {"cardiology": 1.0}},
                                   {"name": "y", "families": {"mc_bmi": 0.5, "hepatology": 0.5}}]})
    assert config_from_dict(raw).clients[1].families == {"mc_bmi": 0.5, "hepatology": 0.5}
    raw["clients"][0]["families"] = {"oncology": 1.0}
    with pytest.raises(ValueError, match=r"clients.x.families: unknown family 'oncology'"):
        config_from_dict(raw)


def test_missing_calculators_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "medcalc.mean_arterial_pressure", None)  # as if not installed
    with pytest.raises(ValueError, match=r"'mc_map' needs the MedCalc-Bench calculators: .*secure_fgrpo\[real\]"):
        FAMILIES["mc_map"].sample(random.Random(0))
