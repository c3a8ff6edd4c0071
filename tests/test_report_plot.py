"""The accuracy plot: whole-round ticks, per-client lines through the last round, aborted
rounds marked (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from secure_fgrpo.report import accuracy_curves, accuracy_figure, plot_accuracy


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(tmp_path: Path, final_after: int = 3) -> Path:
    run = tmp_path / "run"
    _jsonl(run / "global_metrics.jsonl", [{"round": r, "global_accuracy": 0.2 + 0.1 * r} for r in range(4)])
    _jsonl(run / "server" / "metrics.jsonl", [{"round": r, "aborted": r == 2} for r in (1, 2, 3)])
    for name in ("a", "b"):
        _jsonl(run / "clients" / name / "metrics.jsonl",
               [{"round": r, "eval_accuracy_of_global": 0.1 * r} for r in (1, 2, 3)])
        (run / "clients" / name / "final_eval.json").write_text(
            json.dumps({"after_round": final_after, "eval_accuracy_of_global": 0.9}))
    return run


def test_client_lines_reach_the_last_round(tmp_path) -> None:
    glob, per = accuracy_curves(_run(tmp_path))
    assert sorted(glob) == [0, 1, 2, 3]
    assert per["a"] == {0: 0.1, 1: 0.2, 2: 0.30000000000000004, 3: 0.9}
    _, stale = accuracy_curves(_run(tmp_path / "stale", final_after=2))  # from before a resume: ignored
    assert sorted(stale["a"]) == [0, 1, 2]


def test_integer_ticks_and_aborted_rounds_marked(tmp_path) -> None:
    run = _run(tmp_path)
    fig = accuracy_figure(run)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    spans = [p for p in ax.patches if p.get_label() == "aborted round"]
    assert len(spans) == 1
    box = spans[0].get_patch_transform().transform_path(spans[0].get_path()).get_extents()
    assert box.x0 < 2 < box.x1 and box.x1 - box.x0 < 1  # round 2, and only it
    assert "aborted round" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    assert plot_accuracy(run).stat().st_size > 0
