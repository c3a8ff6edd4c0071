"""Non-IID partitioning and loading an institution's own JSONL / Parquet problems."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from secure_fgrpo.data import (
    ClientData,
    FederatedData,
    family_mixes,
    load_problems,
    make_federated_data,
    partition,
)
from secure_fgrpo.tasks import GENERATED_FAMILIES, Problem, RewardSpec, score

FAMS = list(GENERATED_FAMILIES)
CLIENTS = ["h0", "h1", "h2"]


# ---- family_mixes ----

def test_family_round_robin() -> None:
    mixes = family_mixes(CLIENTS, "family", alpha=1.0, families=FAMS, seed=0)
    assert mixes == {
        "h0": {"unit": 0.5, "vitals": 0.5},
        "h1": {"dose": 0.5, "choice": 0.5},
        "h2": {"unit": 0.5, "vitals": 0.5},
    }
    three = family_mixes(["a", "b"], "family", 1.0, FAMS, 0, families_per_client=3)
    assert set(three["b"]) == {"choice", "unit", "vitals"}
    assert all(sum(m.values()) == pytest.approx(1.0) for m in three.values())


def test_dirichlet_mixes_sum_to_one_and_are_deterministic() -> None:
    mixes = family_mixes([f"c{i}" for i in range(20)], "dirichlet", 0.5, FAMS, seed=11)
    assert mixes == family_mixes([f"c{i}" for i in range(20)], "dirichlet", 0.5, FAMS, seed=11)
    assert mixes != family_mixes([f"c{i}" for i in range(20)], "dirichlet", 0.5, FAMS, seed=12)
    for mix in mixes.values():
        assert set(mix) == set(FAMS)
        assert sum(mix.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(w >= 0 for w in mix.values())


def test_dirichlet_alpha_controls_skew() -> None:
    clients = [f"c{i}" for i in range(300)]
    skewed = family_mixes(clients, "dirichlet", 0.1, FAMS, seed=1)
    flat = family_mixes(clients, "dirichlet", 100.0, FAMS, seed=1)
    assert np.mean([max(m.values()) for m in skewed.values()]) > 0.6
    assert np.mean([max(m.values()) for m in flat.values()]) < 0.35  # uniform would be 0.25


def test_family_mixes_errors() -> None:
    with pytest.raises(ValueError, match="by"):
        family_mixes(CLIENTS, "shards", 1.0, FAMS, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        family_mixes(CLIENTS, "dirichlet", 0.0, FAMS, 0)
    with pytest.raises(ValueError, match="families_per_client"):
        family_mixes(CLIENTS, "family", 1.0, FAMS, 0, families_per_client=5)
    with pytest.raises(ValueError, match="'flu'"):
        family_mixes(CLIENTS, "family", 1.0, ["unit", "flu"], 0)
    with pytest.raises(ValueError, match="clients"):
        family_mixes(["a", "a"], "family", 1.0, FAMS, 0)


# ---- make_federated_data ----

@pytest.fixture(scope="module")
def fed() -> FederatedData:
    mixes = family_mixes(CLIENTS, "family", 1.0, FAMS, 0)
    return make_federated_data(mixes, train_size=600, eval_size=80, global_eval_size=200, seed=5)


def test_sizes_and_mix(fed: FederatedData) -> None:
    assert list(fed.clients) == CLIENTS
    for name, client in fed.clients.items():
        assert isinstance(client, ClientData) and client.name == name
        assert len(client.train) == 600 and len(client.eval) == 80
        assert sum(client.mix.values()) == pytest.approx(1.0)
        counts = Counter(p.family for p in client.train)
        assert counts == {f: 300 for f in client.mix}  # exact shares from the mix
        assert set(Counter(p.family for p in client.eval)) == set(client.mix)
    assert len(fed.global_eval) == 200
    assert Counter(p.family for p in fed.global_eval) == {f: 50 for f in FAMS}


def test_eval_prompts_disjoint_from_all_training(fed: FederatedData) -> None:
    train_prompts = {p.prompt for c in fed.clients.values() for p in c.train}
    for client in fed.clients.values():
        prompts = [p.prompt for p in client.eval]
        assert len(set(prompts)) == len(prompts)
        assert not set(prompts) & train_prompts
    global_prompts = [p.prompt for p in fed.global_eval]
    assert len(set(global_prompts)) == len(global_prompts)
    assert not set(global_prompts) & train_prompts


def test_federated_data_is_deterministic(fed: FederatedData) -> None:
    mixes = family_mixes(CLIENTS, "family", 1.0, FAMS, 0)
    again = make_federated_data(mixes, train_size=600, eval_size=80, global_eval_size=200, seed=5)
    assert again == fed
    other = make_federated_data(mixes, train_size=600, eval_size=80, global_eval_size=200, seed=6)
    assert other.clients["h0"].train != fed.clients["h0"].train


def test_dirichlet_partition_only_uses_positive_shares() -> None:
    mixes = {"a": {"unit": 1.0, "dose": 0.0}, "b": {"vitals": 2.0, "dose": 0.0}}
    fed = make_federated_data(mixes, train_size=50, eval_size=10, global_eval_size=20, seed=0)
    assert fed.clients["b"].mix == {"vitals": 1.0, "dose": 0.0}
    assert {p.family for p in fed.clients["a"].train} == {"unit"}
    assert {p.family for p in fed.global_eval} == {"unit", "vitals"}


def test_make_federated_data_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="train_size"):
        make_federated_data({"a": {"unit": 1.0}}, -1, 1, 1, seed=0)
    with pytest.raises(ValueError, match="'a'"):
        make_federated_data({"a": {"bogus": 1.0}}, 1, 1, 1, seed=0)
    monkeypatch.setattr(partition, "_DRAWS_PER_PROBLEM", 2)  # give up sooner: keeps the test fast
    with pytest.raises(ValueError, match="distinct held-out"):  # vitals holds out ~73 prompts, asking for more fails
        make_federated_data({"a": {"vitals": 1.0}}, 50, 6000, 0, seed=0)


# ---- load_problems ----

ROWS = [
    {"prompt": "3 g to mg=", "answer": "3000", "kind": "unit"},
    {"prompt": "egfr below 60?", "answer": "Yes", "kind": "yesno"},
    {"prompt": "dose in mg?", "answer": "12.50", "kind": "numeric"},
    {"prompt": "which is fever? a)36 b)39 c)37", "answer": "B", "kind": "choice"},
]
EXPECTED = [
    Problem("3 g to mg=", "3000", "unit"),
    Problem("egfr below 60?", "yes", "yesno"),
    Problem("dose in mg?", "12.5", "numeric"),
    Problem("which is fever? a)36 b)39 c)37", "b", "choice"),
]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_jsonl_and_parquet(tmp_path: Path) -> None:
    jl = _jsonl(tmp_path / "p.jsonl", ROWS)
    assert load_problems(jl, cache_dir=tmp_path / "cache") == EXPECTED
    pqf = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), pqf)
    loaded = load_problems(str(pqf), cache_dir=tmp_path / "cache")
    assert loaded == EXPECTED
    # Loaded problems score like generated ones.
    assert score(loaded[2], "12.5", True, RewardSpec(scale=10)) == 10.0
    assert score(loaded[3], "b", True, RewardSpec()) == 1.0


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    no_kind = _jsonl(tmp_path / "a.jsonl", [{"prompt": "x", "answer": "1"}])
    with pytest.raises(ValueError, match="'kind'"):
        load_problems(no_kind, cache_dir=cache)
    pqf = tmp_path / "b.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "x", "answer": "1", "kind": "numeric"}]), pqf)
    with pytest.raises(ValueError, match="'prompt'"):
        load_problems(pqf, cache_dir=cache)
    bad_kind = _jsonl(tmp_path / "c.jsonl", [*ROWS[:2], {"prompt": "x", "answer": "1", "kind": "essay"}])
    with pytest.raises(ValueError, match=r"row 2.*'essay'"):
        load_problems(bad_kind, cache_dir=cache)
    bad_answer = _jsonl(tmp_path / "d.jsonl", [{"prompt": "x", "answer": "maybe", "kind": "yesno"}])
    with pytest.raises(ValueError, match=r"row 0.*'answer'"):
        load_problems(bad_answer, cache_dir=cache)
    with pytest.raises(ValueError, match="unsupported"):
        load_problems(tmp_path / "e.csv", cache_dir=cache)
    with pytest.raises(FileNotFoundError):
        load_problems(tmp_path / "missing.jsonl", cache_dir=cache)
