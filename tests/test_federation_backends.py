"""The same seeded round through every secure-sum backend gives the same global adapter, and
a server-blind run leaves no aggregate (nor anything derived from it) on the server side."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation


@pytest.fixture(scope="module")
def plaintext_global(quick_model_dir, tmp_path_factory) -> np.ndarray:
    fed = Federation(config_from_dict(small_run(**{"federation.rounds": 1})), tmp_path_factory.mktemp("p") / "run")
    fed.run()
    return fed.global_model.state.vector.copy()


@pytest.mark.parametrize("backend, options, rtol", [
    ("ckks", {"reveal": "server-learns-sum"}, 1e-6),
    ("ckks", {"reveal": "server-blind"}, 1e-6),
    ("ckks", {"reveal": "server-blind", "weights": "server"}, 1e-5),  # CKKS: refused in server-learns-sum
    ("masked", {}, 1e-4),  # fixed-point quantisation
])
def test_secure_round_matches_plaintext(plaintext_global, tmp_path, backend: str, options: dict, rtol: float) -> None:
    raw = small_run(**{"federation.rounds": 1, "secure_sum.backend": backend, "secure_sum.options": options})
    fed = Federation(config_from_dict(raw), tmp_path / "run")
    fed.run()
    got = fed.global_model.state.vector
    scale = np.abs(plaintext_global).max()
    assert np.allclose(got, plaintext_global, rtol=0, atol=rtol * scale)
    server = tmp_path / "run" / "server"
    row = json.loads((server / "metrics.jsonl").read_text().splitlines()[-1])
    if options.get("reveal") == "server-blind":
        assert not (server / "checkpoints").exists() and not (server / "global_adapter").exists()
        assert not {"update_norm", "sum_of_weights", "global_accuracy"} & set(row)
        copies = [
            np.load(p)["vector"] for p in sorted((tmp_path / "run" / "clients").glob("*/checkpoints/round-1.npz"))
        ]
        assert len(copies) == 3 and all(np.array_equal(c, copies[0]) for c in copies)
    else:
        assert (server / "global_adapter").exists() and "sum_of_weights" in row
    # Only ciphertexts reached the server: every input message is an encrypted kind.
    kinds = {json.loads(line)["kind"] for line in (server / "transcript.jsonl").read_text().splitlines()}
    assert "vector" not in kinds
