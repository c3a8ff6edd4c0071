"""benchmarks/convergence.py's table bookkeeping: ``--methods X`` merges X's rows into an existing
convergence.json (keyed by method, seed and client) so a row can be added after the rest ran; the
"gain as % of centralized" column; a lever whose config table this build lacks is refused with
one line. One end-to-end run on the quick tiny model (one round, seconds)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "convergence.py"


@pytest.fixture(scope="module")
def conv() -> Iterator[ModuleType]:
    # by its own name on sys.path: the benchmark's spawned workers import it the same way
    sys.path.insert(0, str(SCRIPT.parent))
    yield importlib.import_module(SCRIPT.stem)
    sys.path.remove(str(SCRIPT.parent))


def _run(method: str, seed: int, curve: list[float], client: str | None = None) -> dict[str, Any]:
    return {"method": method, "seed": seed, "client": client, "accuracy": curve, "wall_s": 1.0}


def _result(conv: ModuleType, runs: list[dict[str, Any]], rounds: int = 2) -> dict[str, Any]:
    seeds = sorted({r["seed"] for r in runs})
    return {"command": "cmd", "total_wall_s": 5.0, "machine": {}, "runs": runs,
            "settings": {"rounds": rounds, "quick": True, "seeds": seeds}, "summary": conv.summarise(runs, seeds)}


def test_merge_keeps_other_rows_and_replaces_same_key(conv: ModuleType) -> None:
    old = conv.merge_runs(None, _result(conv, [_run("centralized", 0, [0.2, 0.4, 0.6]),
                                               _run("fgrpo", 0, [0.2, 0.3, 0.4]),
                                               _run("local", 0, [0.2, 0.25, 0.3], "a")]))
    new = _result(conv, [_run("fgrpo", 0, [0.2, 0.4, 0.5]), _run("fgrpo-server-sgd-lr4", 1, [0.1, 0.2, 0.3])])
    merged = conv.merge_runs(json.loads(json.dumps(old)), new)
    keys = sorted((r["method"], r["seed"]) for r in merged["runs"])
    assert keys == [("centralized", 0), ("fgrpo", 0), ("fgrpo-server-sgd-lr4", 1), ("local", 0)]
    assert merged["summary"]["fgrpo"]["final"]["mean"] == pytest.approx(0.5)  # the rerun replaced the old row
    assert merged["settings"]["seeds"] == [0, 1]
    assert len(merged["invocations"]) == 2 and merged["total_wall_s"] == pytest.approx(10.0)
    # % of centralized: per seed; seed 1 has no centralized run, so the lever has no such column
    assert merged["summary"]["fgrpo"]["gain_pct_of_centralized"]["mean"] == pytest.approx(0.75)
    assert "gain_pct_of_centralized" not in merged["summary"]["fgrpo-server-sgd-lr4"]
    assert "gain_pct_of_centralized" not in merged["summary"]["centralized"]


def test_merge_refuses_other_round_counts(conv: ModuleType) -> None:
    old = conv.merge_runs(None, _result(conv, [_run("fgrpo", 0, [0.2, 0.3, 0.4])]))
    with pytest.raises(ValueError, match="rounds = 3 but the existing results have 2"):
        conv.merge_runs(old, _result(conv, [_run("fgrpo", 0, [0.2, 0.3, 0.4, 0.5])], rounds=3))


def test_lever_without_its_config_table_is_refused_in_one_line(conv: ModuleType,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import fields

    from secure_fgrpo.config import RunConfig

    has_pubswap = "pubswap" in {f.name for f in fields(RunConfig)}
    assert (conv.unavailable("fgrpo-pubswap") is None) == has_pubswap
    assert conv.unavailable("fgrpo-server-sgd-lr4") is None
    if not has_pubswap:
        with pytest.raises(SystemExit):
            conv.main(["--quick", "--methods", "fgrpo,fgrpo-pubswap"])
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].endswith("--methods: fgrpo-pubswap needs [pubswap]: not in this build")
        assert "Traceback" not in "".join(err)


def test_methods_merge_end_to_end(conv: ModuleType, tmp_path: Path) -> None:
    base = ["--quick", "--rounds", "1", "--seeds", "0", "--workers", "2", "--out", str(tmp_path)]
    assert conv.main([*base, "--methods", "centralized,fgrpo"]) == 0
    md_path = tmp_path / "convergence.md"
    md_path.write_text(f"# Verdict\n\nby hand\n\n{conv.VERDICT_END}\n\n{md_path.read_text()}")
    assert conv.main([*base, "--methods", "fgrpo-server-sgd-lr2"]) == 0
    result = json.loads((tmp_path / "convergence.json").read_text())
    assert sorted(r["method"] for r in result["runs"]) == ["centralized", "fgrpo", "fgrpo-server-sgd-lr2"]
    md = md_path.read_text()
    assert md.startswith("# Verdict\n\nby hand\n") and md.count(conv.VERDICT_END) == 1  # kept, not repeated
    assert "gain as % of centralized" in md
    assert '`fgrpo-server-sgd-lr2`: `{"server.kind": "sgd", "server.lr": 2.0}`' in md
    assert md.count("--methods") == 2  # both commands are listed
    with pytest.raises(SystemExit):  # another round count would mix curves of different lengths
        conv.main([*base[:2], "2", *base[3:], "--methods", "fgrpo"])


def test_every_runnable_lever_is_a_valid_config(conv: ModuleType) -> None:
    """A typo in a lever's key or value would surface only minutes into a benchmark run."""
    for method in conv.LEVERS:
        if conv.unavailable(method) is None:
            cfg = conv.make_config(0, 1, conv.method_overrides(method))
            for dotted, value in conv.method_overrides(method).items():
                section, key = dotted.split(".")
                assert getattr(getattr(cfg, section), key) == value, (method, dotted)
    steps24 = conv.make_config(0, 1, conv.method_overrides("fgrpo-steps24")).grpo
    demo = conv.make_config(0, 1, {}).grpo  # same rollouts per round: steps × oversample
    assert steps24.steps * steps24.oversample == demo.steps * demo.oversample
