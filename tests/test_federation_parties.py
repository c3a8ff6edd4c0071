"""The in-process federation as parties wired by an in-process transport gives the same
results as the coordinator-computed rounds it replaced: the values below were recorded on the
code before the refactor (tests/parties_baseline.json). Plaintext is bit-exact; masked sums
carry fresh randomized rounding (dither from os.urandom), so there only what precedes the sum
is exact and the global vector matches within the fixed-point quantum."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.party import Refused
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.federation.setup import RoundSetup
from secure_fgrpo.federation.store import read_jsonl

BASE = json.loads((Path(__file__).parent / "parties_baseline.json").read_text())
KEYS = ("round", "mean_reward", "reward_std", "groups", "count", "gain", "weight", "delta_norm",
        "eval_accuracy_of_global")


def _run(tmp: Path, **over: object) -> tuple[Federation, np.ndarray, dict[str, list[dict]]]:
    cfg = config_from_dict(small_run(**{"federation.workers": 2, **over}))
    fed = Federation(cfg, tmp)
    fed.run()
    vec = np.load(tmp / "server/checkpoints/round-2.npz")["vector"]
    rows = {n: [{k: r[k] for k in KEYS} for r in read_jsonl(tmp / "clients" / n / "metrics.jsonl")] for n in "abc"}
    return fed, vec, rows


def test_plaintext_run_is_bit_identical_to_the_recorded_one(tmp_path: Path) -> None:
    _, vec, rows = _run(tmp_path / "p", **{"secure_sum.backend": "plaintext"})
    assert rows == BASE["plaintext"]["clients"]
    assert hashlib.sha256(vec.tobytes()).hexdigest() == BASE["plaintext"]["vector_sha256"]


def test_masked_run_matches_the_recorded_one_and_parties_refuse_a_foreign_setup(tmp_path: Path) -> None:
    fed, vec, rows = _run(tmp_path / "m", **{"secure_sum.backend": "masked"})
    for n in "abc":
        assert rows[n][0] == BASE["masked"]["clients"][n][0]
        assert rows[n][1] == pytest.approx(BASE["masked"]["clients"][n][1], rel=1e-5)
    assert vec[:4] == pytest.approx(np.asarray(BASE["masked"]["vector_head"]), abs=1e-6)
    # Stage 0 is checked by each party against its own config before it trains.
    setup = fed.coordinator.open_round(3, ["a", "b", "c"])
    vector = fed.global_model.state.vector
    party = fed.parties["a"]
    bad = {"setup.config_digest": RoundSetup(setup.spec, setup.backend, setup.options, setup.noise,
                                             setup.model_version, setup.global_digest, "0" * 64),
           "setup.global_digest": RoundSetup(setup.spec, setup.backend, setup.options, setup.noise,
                                             setup.model_version, "0" * 64, setup.config_digest),
           "setup.backend": RoundSetup(setup.spec, "plaintext", setup.options, setup.noise,
                                       setup.model_version, setup.global_digest, setup.config_digest),
           "setup.noise": RoundSetup(setup.spec, setup.backend, setup.options, {"mechanism": "gaussian"},
                                     setup.model_version, setup.global_digest, setup.config_digest),
           "setup.spec.threshold": RoundSetup(replace(setup.spec, threshold=1), setup.backend, setup.options,
                                              setup.noise, setup.model_version, setup.global_digest,
                                              setup.config_digest)}
    for field, wrong in bad.items():
        with pytest.raises(Refused, match=field):
            party.accept(wrong, vector)
    party.accept(setup, vector)
    decoded, carried = RoundSetup.unpack(setup.pack(vector))
    assert decoded == setup and carried is not None and np.array_equal(carried, vector)


def test_client_level_dp_run_trains_as_the_recorded_one(tmp_path: Path) -> None:
    """With distributed client-level noise each party adds its own share (fresh secure randomness),
    so the global vector is not reproducible; what precedes the noise is (round 1's rows)."""
    dp = {"epsilon": 8, "delta": 1e-5, "mechanism": "distributed"}
    _, _, rows = _run(tmp_path / "dp", **{"secure_sum.backend": "masked", "privacy.client_level": dp})
    assert {n: r[:1] for n, r in rows.items()} == BASE["masked_dp"]["clients_round1"]
