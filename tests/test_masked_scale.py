"""Issue 17 item 1: the logarithmic graph at scale. With the default policy (γ = 0.2, δ = 0.1)
the graph is sparse at n = 100 and 500, and a round survives δ·n dropouts spread over every stage
after the advertisements (the graph is drawn from the anchors' advertisements: a missing anchor
aborts, cleanly; any other missing advertisement is a dropout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.secure_sum import DropSchedule, SumClient, run_secure_sum
from secure_fgrpo.secure_sum.masked.context import STAGES
from secure_fgrpo.secure_sum.masked.params import counts
from secure_fgrpo.secure_sum.masked.simulate import ListRecorder, make_round, make_spec


def _dropouts_at_every_stage(tmp_path: Path, n: int) -> None:
    spec = make_spec(n, 16, round_=1)
    sim = make_round(tmp_path, spec)
    gp = sim.server.ctx.graph_params
    assert gp.degree < n // 2  # sparse: the logarithmic graph, not the complete one
    d = counts(n, 0.2, 0.1)[1]
    rng = np.random.default_rng(n)
    gone = rng.choice(spec.participants, size=d, replace=False)
    stages = STAGES[1:]
    drops = DropSchedule({s: {str(x) for x in gone[i::len(stages)]} for i, s in enumerate(stages)})
    assert all(drops.drop_before[s] for s in stages)
    out = run_secure_sum(sim.server, dict[str, SumClient](sim.clients), ListRecorder(), drops)
    assert not out.aborted, out.reason
    lost = drops.drop_before["share"] | drops.drop_before["masked_input"]
    assert set(out.contributors) == set(spec.participants) - lost
    exact = sum(sim.inputs[c] for c in out.contributors)
    assert out.total is not None
    assert np.abs(out.total - exact).max() <= out.stats["quantisation_bound"]


def test_dropouts_at_every_stage_n100(tmp_path: Path) -> None:
    _dropouts_at_every_stage(tmp_path, 100)


@pytest.mark.slow
def test_dropouts_at_every_stage_n500(tmp_path: Path) -> None:
    _dropouts_at_every_stage(tmp_path, 500)


def test_a_missing_anchor_aborts_a_sparse_round_cleanly(tmp_path: Path) -> None:
    spec = make_spec(30, 16, round_=1)
    sim = make_round(tmp_path, spec)
    anchor = sim.server.ctx.anchors[-1]
    out = run_secure_sum(sim.server, dict[str, SumClient](sim.clients), ListRecorder(),
                         DropSchedule({"advertise": {anchor}}))
    assert out.aborted and out.total is None and f"anchor(s) {anchor} did not advertise" in out.reason


def test_a_missing_non_anchor_advertisement_is_a_dropout(tmp_path: Path) -> None:
    spec = make_spec(30, 16, round_=1)
    sim = make_round(tmp_path, spec)
    gone = next(p for p in spec.participants if p not in sim.server.ctx.anchors)
    out = run_secure_sum(sim.server, dict[str, SumClient](sim.clients), ListRecorder(),
                         DropSchedule({"advertise": {gone}}))
    assert not out.aborted, out.reason
    assert set(out.contributors) == set(spec.participants) - {gone}
    exact = sum(sim.inputs[c] for c in out.contributors)
    assert out.total is not None
    assert np.abs(out.total - exact).max() <= out.stats["quantisation_bound"]
