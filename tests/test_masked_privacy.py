"""What the server sees of one client: uniform words, uncorrelated with the input, and no
secret anywhere in the transcript or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from secure_fgrpo.secure_sum import DropSchedule, run_secure_sum
from secure_fgrpo.secure_sum.masked import messages as m
from secure_fgrpo.secure_sum.masked.simulate import ListRecorder, make_round, make_spec

DIM = 100_000


@pytest.fixture(scope="module")
def round_view(tmp_path_factory: pytest.TempPathFactory):
    spec = make_spec(5, DIM, 4, round_=1, data_bound=1.0, weight_bound=10.0)
    sim = make_round(tmp_path_factory.mktemp("priv"), spec)
    # Highly structured inputs: a square wave with the maximal weight, and a ramp.
    names = spec.participants
    const = np.where((np.arange(DIM) // 1000) % 2 == 0, 1.0, -1.0) * 0.999 / np.sqrt(DIM - 1)
    const[-1] = 10.0
    ramp = np.linspace(-1, 1, DIM)
    ramp[:-1] *= 0.999 / np.linalg.norm(ramp[:-1])
    ramp[-1] = 0.0
    sim.clients[names[0]].set_input(const)
    sim.clients[names[1]].set_input(ramp)
    sim.inputs[names[0]], sim.inputs[names[1]] = const, ramp
    secret_keys = {n: c._keys.s_secret_bytes() for n, c in sim.clients.items()}
    recorder = ListRecorder()
    out = run_secure_sum(sim.server, sim.clients, recorder, DropSchedule())
    seeds = {n: c._self_seed for n, c in sim.clients.items()}
    masked = {msg.sender: np.frombuffer(m.decode("masked", msg.payload).words, dtype="<u4")
              for msg in recorder.messages if msg.kind == "masked"}
    return sim, out, recorder, masked, seeds, secret_keys


@pytest.mark.parametrize("who", [0, 1])
def test_masked_vector_is_uniform(round_view, who: int) -> None:
    sim, _, _, masked, _, _ = round_view
    words = masked[sim.spec.participants[who]]
    byte_counts = np.bincount(words.view(np.uint8), minlength=256)
    assert stats.chisquare(byte_counts).pvalue > 1e-4
    top = np.bincount((words >> 24).astype(np.int64), minlength=256)
    assert stats.chisquare(top).pvalue > 1e-4
    low = np.bincount((words & 0xFF).astype(np.int64), minlength=256)
    assert stats.chisquare(low).pvalue > 1e-4


@pytest.mark.parametrize("who", [0, 1])
def test_masked_vector_is_uncorrelated_with_the_input(round_view, who: int) -> None:
    sim, _, _, masked, _, _ = round_view
    name = sim.spec.participants[who]
    words = masked[name].astype(np.float64)
    x = sim.inputs[name]
    limit = 5.0 / np.sqrt(DIM)
    assert np.std(x[:-1]) > 0
    assert abs(np.corrcoef(words[:-1], x[:-1])[0, 1]) < limit
    assert abs(stats.spearmanr(words[:-1], x[:-1]).statistic) < limit
    # Two very different inputs give indistinguishable word distributions.
    other = masked[sim.spec.participants[1 - who]].astype(np.float64)
    assert stats.ks_2samp(words, other).pvalue > 1e-4


def test_unmasked_sum_is_still_exact(round_view) -> None:
    sim, out, _, _, _, _ = round_view
    exact = sum(sim.inputs[c] for c in out.contributors)
    assert np.abs(out.total - exact).max() <= out.stats["quantisation_bound"]


def test_no_secret_in_any_message(round_view) -> None:
    sim, _, recorder, _, seeds, secret_keys = round_view
    blob = b"".join(msg.payload for msg in recorder.messages)
    for name in sim.spec.participants:
        assert seeds[name] is not None
        assert seeds[name] not in blob
        assert secret_keys[name] not in blob


def test_no_secret_in_logs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = make_spec(6, 50, 4, round_=2)
    sim = make_round(tmp_path, spec)
    caplog.set_level(logging.DEBUG)
    out = run_secure_sum(sim.server, sim.clients, ListRecorder(),
                         DropSchedule({"masked_input": {spec.participants[0]}}))
    assert not out.aborted
    text = caplog.text + "".join(repr(c) for c in sim.clients.values())
    for c in sim.clients.values():
        secrets = [c._keys.s_secret_bytes()] + ([c._self_seed] if c._self_seed else [])
        secrets += [p.self_share for p in c._held.values()] + [p.key_share for p in c._held.values()]
        for s in secrets:
            assert s.hex() not in text and repr(s) not in text
