"""End-to-end SecAgg+ rounds: the masked sum equals the plaintext sum over exactly the
contributors, within the documented quantisation bound, whatever drops out at any stage; below
the threshold the round aborts with nothing to apply, and the next round runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.secure_sum import DropSchedule, make_backend, run_secure_sum
from secure_fgrpo.secure_sum.masked import quantisation_bound
from secure_fgrpo.secure_sum.masked.context import STAGES
from secure_fgrpo.secure_sum.masked.params import counts
from secure_fgrpo.secure_sum.masked.simulate import ListRecorder, make_round, make_spec

INPUT_STAGES = ("advertise", "share", "masked_input")  # dropping before these loses the input


def _threshold(n: int) -> int:
    return max(n // 2 + 1, math.ceil(0.66 * n))


def _plaintext_sum(inputs: dict[str, np.ndarray], names: tuple[str, ...], spec) -> np.ndarray:
    backend = make_backend("plaintext")
    server = backend.server(spec, Path("."))
    clients = {}
    for n in names:
        clients[n] = backend.client(n, spec, Path("."))
        clients[n].set_input(inputs[n])
    out = run_secure_sum(server, clients, ListRecorder())
    assert out.contributors == names
    return out.total


def _random_drops(rng: np.random.Generator, names: tuple[str, ...], count: int,
                  stages: tuple[str, ...] = STAGES) -> DropSchedule:
    sched = DropSchedule()
    for name in rng.choice(names, size=count, replace=False):
        sched.drop_before.setdefault(str(rng.choice(stages)), set()).add(str(name))
    return sched


def _sent(spec, drops: DropSchedule) -> int:
    """Messages the server should receive: each stage, everyone not dropped by then."""
    gone: set[str] = set()
    total = 0
    for stage in STAGES:
        gone |= drops.drop_before.get(stage, set())
        total += len(set(spec.participants) - gone)
    return total


@pytest.mark.parametrize("n", range(3, 21))
@pytest.mark.parametrize("pattern", range(3))
def test_masked_equals_plaintext_with_dropouts(tmp_path: Path, n: int, pattern: int) -> None:
    rng = np.random.default_rng(1000 * pattern + n)
    t = _threshold(n)
    dim = int(rng.integers(50, 1000))
    spec = make_spec(n, dim, t, round_=n, seed=n, data_bound=float(rng.uniform(0.1, 5)),
                     weight_bound=float(rng.uniform(1, 50)))
    sim = make_round(tmp_path, spec, {"signed": bool((n + pattern) % 2)}, rng=rng)
    count = n - t if pattern == 0 else int(rng.integers(0, n - t + 1))  # pattern 0: most drops allowed
    stages = STAGES
    if not sim.server.ctx.graph_params.complete(n):
        # A sparse graph tolerates its δ·n random dropouts (params.py), and only after every
        # participant advertised (the graph is drawn from all advertisements).
        count, stages = min(count, counts(n, 0.2, 0.1)[1]), STAGES[1:]
    drops = _random_drops(rng, spec.participants, count, stages)
    recorder = ListRecorder()
    out = run_secure_sum(sim.server, sim.clients, recorder, drops)

    lost = set().union(*(drops.drop_before.get(s, set()) for s in INPUT_STAGES))
    assert not out.aborted, out.reason
    assert out.contributors == tuple(sorted(set(spec.participants) - lost))
    expected = _plaintext_sum(sim.inputs, out.contributors, spec)
    bound = quantisation_bound(spec, len(out.contributors))
    assert np.abs(out.total - expected).max() <= bound * (1 + 1e-9) + 1e-12
    assert out.stats["quantisation_bound"] == pytest.approx(bound)
    # The transcript holds every message the server received, and only client messages.
    assert {m.recipient for m in recorder.messages} == {"server"}
    assert len(recorder.messages) == _sent(spec, drops)


@pytest.mark.parametrize("n, stage", [(5, "advertise"), (6, "share"), (8, "masked_input"),
                                      (7, "consistency"), (9, "unmask")])
def test_below_threshold_aborts_and_next_round_runs(tmp_path: Path, n: int, stage: str) -> None:
    t = _threshold(n)
    spec = make_spec(n, 64, t, round_=1)
    sim = make_round(tmp_path, spec)
    gone = set(spec.participants[: n - t + 1])
    out = run_secure_sum(sim.server, sim.clients, ListRecorder(), DropSchedule({stage: gone}))
    assert out.aborted and out.total is None and out.contributors == ()
    assert "threshold" in out.reason

    spec2 = make_spec(n, 64, t, round_=2)
    nxt = make_round(tmp_path, spec2, backend=sim.backend)
    out2 = run_secure_sum(nxt.server, nxt.clients, ListRecorder())
    assert not out2.aborted and out2.contributors == spec2.participants
    exact = sum(nxt.inputs[c] for c in spec2.participants)
    assert np.abs(out2.total - exact).max() <= quantisation_bound(spec2)


@pytest.mark.parametrize("options", [{"modulus_bits": 64}, {"prg": "chacha20"},
                                     {"degree": 4, "policy": {"gamma": 0.05, "delta": 0.2}},
                                     {"signed": False, "scale": 2.0 ** 16}])
def test_option_variants_sum_correctly(tmp_path: Path, options: dict) -> None:
    spec = make_spec(12, 300, 9, round_=3, data_bound=2.0, weight_bound=4.0)
    sim = make_round(tmp_path, spec, {"policy": {"delta": 0.2}, **options})  # 2 dropouts below
    drops = DropSchedule({"masked_input": {spec.participants[1]}, "unmask": {spec.participants[5]}})
    out = run_secure_sum(sim.server, sim.clients, ListRecorder(), drops)
    assert not out.aborted, out.reason
    assert spec.participants[1] not in out.contributors and spec.participants[5] in out.contributors
    exact = sum(sim.inputs[c] for c in out.contributors)
    bound = quantisation_bound(spec, len(out.contributors), options.get("modulus_bits", 32),
                               options.get("scale"))
    assert np.abs(out.total - exact).max() <= bound


def test_sparse_degree_override_can_abort_cleanly(tmp_path: Path) -> None:
    """With a hand-picked small degree, dropping a whole neighbourhood aborts (never a wrong sum)."""
    spec = make_spec(12, 40, 8, round_=4)
    sim = make_round(tmp_path, spec, {"degree": 2, "policy": {"gamma": 0.05}})

    class _Neighbourhood(DropSchedule):
        def alive(self, stage: str, names: list[str], gone: set[str]) -> list[str]:
            if stage == "unmask":  # the graph exists once everyone advertised
                g = sim.server.graph
                gone |= set(g.neighbours[g.order[0]])  # both holders of one client's secrets
            return [n for n in names if n not in gone]

    out = run_secure_sum(sim.server, sim.clients, ListRecorder(), _Neighbourhood())
    assert out.aborted and out.total is None
    assert "share(s)" in out.reason


def test_a_dropped_client_reveals_nothing_once_excluded(tmp_path: Path) -> None:
    """A client excluded by the server (no reply) leaves the round instead of answering."""
    spec = make_spec(6, 30, 4, round_=5)
    sim = make_round(tmp_path, spec)
    c = sim.clients[spec.participants[0]]
    assert c.respond("advertise", None) is not None
    assert c.respond("share", None) is None
    assert c.respond("masked_input", None) is None
