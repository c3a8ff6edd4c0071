"""Held-out evaluation means what it says: no held-out prompt was ever trained on — not by the
embedded model's warm start, not by a client's generated pool, not by a client's own file."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path

import pytest
from conftest import QUICK, small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.demo import demo_config
from secure_fgrpo.federation.datasets import build_data
from secure_fgrpo.model.tiny import TinyModelSpec, warm_start_prompts
from secure_fgrpo.tasks import FAMILIES, GENERATED_FAMILIES, in_held_out_space, sample_in_space, sample_problems


def _held_out(fed) -> set[str]:
    return {p.prompt for p in fed.global_eval} | {p.prompt for c in fed.clients.values() for p in c.eval}


def _write(path: Path, problems) -> Path:
    path.write_text("".join(json.dumps({"prompt": p.prompt, "answer": p.answer, "kind": p.family}) + "\n"
                            for p in problems))
    return path


# ---- item 1: the held-out sets are disjoint from the warm start ----

@pytest.mark.parametrize("spec", [TinyModelSpec(), QUICK], ids=["demo-model", "test-model"])
def test_warm_start_never_sees_a_held_out_prompt(spec: TinyModelSpec) -> None:
    """On the old recipe 149-153 of the demo's 200 global held-out prompts were warm-start prompts."""
    warm = warm_start_prompts(spec)
    assert len(warm) > 1000  # the stream really was enumerated (distinct prompts)
    assert not any(in_held_out_space(p) for p in warm)
    for cfg in (demo_config(), demo_config(seed=1), config_from_dict(small_run())):
        fed = build_data(cfg)
        assert len(fed.global_eval) == cfg.data.global_eval_size
        assert not _held_out(fed) & warm
        assert "never in any client's training nor in the embedded model's warm start" in fed.describe_global_eval()


def test_every_family_reserves_enough_held_out_prompts() -> None:
    """The smallest space (vitals, 431 prompts) still gives the default 50 per family, both answers."""
    fed = build_data(demo_config())
    assert Counter(p.family for p in fed.global_eval) == {f: 50 for f in GENERATED_FAMILIES}
    assert {p.answer for p in fed.global_eval if p.family == "vitals"} == {"yes", "no"}
    assert {p.answer for p in fed.global_eval if p.family == "choice"} == {"a", "b", "c"}
    for c in fed.clients.values():
        assert all(in_held_out_space(p.prompt) for p in c.eval)
        assert not any(in_held_out_space(p.prompt) for p in c.train)


def test_sampling_respects_the_space() -> None:
    rng = random.Random(0)
    for name in GENERATED_FAMILIES:
        assert in_held_out_space(sample_in_space(FAMILIES[name], rng, "held_out").prompt)
        assert not in_held_out_space(sample_in_space(FAMILIES[name], rng, "train").prompt)
    assert all(in_held_out_space(p.prompt) for p in sample_problems(["unit", "dose"], 50, 1, space="held_out"))
    with pytest.raises(ValueError, match="space"):
        sample_in_space(FAMILIES["unit"], rng, "eval")  # type: ignore[arg-type]


# ---- item 2: a client's own file cannot put held-out prompts into training ----

def _own_data_cfg(tmp_path: Path, rows, **over):
    data = _write(tmp_path / "hospital.jsonl", rows)
    raw = small_run(**over)
    raw["clients"][2] = {"name": "c", "data": str(data)}
    return config_from_dict(raw), data


def test_own_file_made_of_held_out_prompts_loses_them_with_a_message(tmp_path: Path, caplog) -> None:
    """On the old code such a file put 160 of the 200 global held-out prompts into training silently."""
    filler = sample_problems(["unit"], 30, seed=9)
    stolen = build_data(_own_data_cfg(tmp_path, filler)[0]).global_eval[:16]  # the built-in part: public
    cfg, data = _own_data_cfg(tmp_path, stolen + filler)
    with caplog.at_level(logging.WARNING):
        fed = build_data(cfg)
    held = _held_out(fed)
    assert not held & {p.prompt for c in fed.clients.values() for p in c.train}
    own = fed.clients["c"]
    assert own.train and not {p.prompt for p in own.train} & {p.prompt for p in stolen}
    messages = [r.getMessage() for r in caplog.records if str(data) in r.getMessage()]
    removed = [m for m in messages if "removed" in m]
    assert len(removed) == 1
    n_removed = int(removed[0].split("removed ")[1].split(" ")[0])
    n_total = len(stolen) + len(filler)
    own_held = {p.prompt for p in own.eval} & {p.prompt for p in stolen + filler}
    assert n_removed == n_total - len(own.train) - len(own_held)
    assert n_removed >= len(stolen) - len(own.eval)  # every stolen prompt left training
    assert data.read_text().count("\n") == n_total  # the user's file is untouched


def test_own_file_with_nothing_left_to_train_on_is_refused(tmp_path: Path) -> None:
    stolen = build_data(_own_data_cfg(tmp_path, sample_problems(["unit"], 30, seed=9))[0]).global_eval[:16]
    cfg, _data = _own_data_cfg(tmp_path, stolen)
    with pytest.raises(ValueError, match=rf"{tmp_path}.*hospital.jsonl: nothing left once the \d+ training rows"):
        build_data(cfg)
