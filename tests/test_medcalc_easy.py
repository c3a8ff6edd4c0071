"""The first difficulty level of the clinical calculations (tasks/medcalc.py): the formula's
inputs stated plainly with the formula, the calculator's own answer, the same values as the full
vignette, held-out prompts disjoint from training; and the real-model demo's config (now on the
rule-based scores' points level, tasks/medcalc_points.py)."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest

from secure_fgrpo.data.partition import make_federated_data
from secure_fgrpo.demo import REAL_DEMO, demo_config
from secure_fgrpo.tasks import FAMILIES, RewardSpec, score
from secure_fgrpo.tasks.medcalc import CALCULATORS, EASY_INSTRUCTION, SPECIALTIES


def _ibw(sex: str, h: float) -> float:
    return (50 if sex == "Male" else 45.5) + 2.3 * (h / 2.54 - 60)


EASY = [  # family, the numbers in the plain statement, the formula on them
    ("mc_map_easy", r"Blood pressure (\d+)/(\d+) mm Hg\.", lambda s, d: (s + 2 * d) / 3),
    ("mc_qtc_bazett_easy", r"Heart rate (\d+) bpm, QT interval (\d+) ms\.", lambda hr, qt: qt / math.sqrt(60 / hr)),
    ("mc_anion_gap_easy", r"Na (\d+) mEq/L, Cl (\d+) mEq/L, HCO3 (\d+) mEq/L\.", lambda na, cl, b: na - cl - b),
    ("mc_serum_osm_easy", r"Na (\d+) mEq/L, BUN (\d+) mg/dL, glucose (\d+) mg/dL\.",
     lambda na, bun, g: 2 * na + bun / 2.8 + g / 18),
    ("mc_fib4_easy", r"Age (\d+) years, AST (\d+) U/L, ALT (\d+) U/L, platelets (\d+) x10\^9/L\.",
     lambda age, ast, alt, plt: age * ast / (plt * math.sqrt(alt))),
    ("mc_bmi_easy", r"Height (\d+) cm, weight (\d+) kg\.", lambda h, w: w / (h / 100) ** 2),
]


@pytest.mark.parametrize("family, pattern, formula", EASY)
def test_easy_answers_are_the_calculators_on_the_stated_inputs(family: str, pattern: str, formula) -> None:
    rng = random.Random(5)
    for _ in range(30):
        p = FAMILIES[family].sample(rng)
        first, formula_line, question = p.prompt.split("\n")
        m = re.fullmatch(pattern, first)
        assert m, first  # the inputs and nothing else: no story, no distractor facts
        assert "=" in formula_line and question.endswith(EASY_INSTRUCTION) and p.family == family
        ref = formula(*map(float, m.groups()))
        assert float(p.answer) == pytest.approx(ref, rel=1e-2, abs=2e-2)  # the calculator rounds RR and its result
        assert score(p, f"It is \\boxed{{{p.answer}}}.", True, RewardSpec()) == 1.0


def test_easy_ibw_states_sex_and_height() -> None:
    rng = random.Random(2)
    for _ in range(30):
        p = FAMILIES["mc_ibw_easy"].sample(rng)
        sex, h = re.fullmatch(r"(Male|Female), height (\d+) cm\.", p.prompt.split("\n")[0]).groups()  # type: ignore[union-attr]
        assert float(p.answer) == pytest.approx(_ibw(sex, float(h)), abs=0.1)


def test_levels_share_the_values_and_differ_in_form() -> None:
    for calc in (c for c in CALCULATORS if c.plain):
        full, easy = FAMILIES[calc.family], FAMILIES[calc.family + "_easy"]
        a, b = random.Random(9), random.Random(9)
        for _ in range(5):
            pf, pe = full.sample(a), easy.sample(b)
            assert pf.answer == pe.answer and pf.prompt != pe.prompt and len(pe.prompt) < len(pf.prompt) + 80
    assert "mc_cha2ds2_vasc_easy" not in FAMILIES  # rule scores have no first level yet


def test_easy_specialties_mix_only_their_calculators() -> None:
    for s in SPECIALTIES:
        members = {m.name for m in FAMILIES[f"{s}_easy"].members}  # type: ignore[attr-defined]
        assert members == {c.family + "_easy" for c in CALCULATORS if c.specialty == s and c.plain}


def test_real_demo_held_out_prompts_are_disjoint_from_training() -> None:
    cfg = demo_config("smollm2")
    mixes = {c.name: c.families for c in cfg.clients}
    fed = make_federated_data(mixes, train_size=80, eval_size=10, global_eval_size=60, seed=cfg.seed)
    train = {p.prompt for d in fed.clients.values() for p in d.train}
    held_sets = [[p.prompt for p in d.eval] for d in fed.clients.values()] + [[p.prompt for p in fed.global_eval]]
    assert train and all(not train & set(h) and len(set(h)) == len(h) for h in held_sets)  # distinct within a set
    assert {p.family for p in fed.global_eval} == {f"mc_{k}_points" for k in ("cha2ds2_vasc", "child_pugh", "curb_65",
                                                                           "centor")}


def test_real_demo_is_four_hospitals_by_specialty_on_the_masked_backend() -> None:
    cfg = demo_config("smollm2")
    assert cfg.model.path == "smollm2-135m-instruct" and cfg.secure_sum.backend == "masked"
    assert len(cfg.clients) == 4 and len({c.reward.scale for c in cfg.clients}) >= 3
    leading = {max(c.families, key=c.families.__getitem__) for c in cfg.clients}
    assert leading == {f"{s}_points" for s in ("cardiology", "hepatology", "general_medicine")}
    assert len({tuple(sorted(c.families.items())) for c in cfg.clients}) == 4  # non-IID: four different mixes
    assert cfg.eval.max_new_tokens >= cfg.grpo.sampling.max_new_tokens  # an answer can finish in evaluation
    assert REAL_DEMO["clients"][0]["name"] == cfg.clients[0].name
    with pytest.raises(ValueError, match="--model 'gpt5': expected one of embedded, smollm2"):
        demo_config("gpt5")


def test_real_demo_refuses_dp_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from secure_fgrpo.cli import main

    assert main(["demo", "--model", "smollm2", "--dp", "example:8", "--out", str(tmp_path / "run")]) == 2
    out = capsys.readouterr().out.strip()
    assert "--dp: the smollm2 demo is not sized for DP" in out and len(out.splitlines()) == 1
    assert not (tmp_path / "run").exists()
