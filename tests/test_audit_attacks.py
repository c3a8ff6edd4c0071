"""The attack harness has teeth: on the plaintext backend every attack succeeds; through the
masked and CKKS backends (real protocols, real crypto) the same attacks fall to chance.

The attacker reads only the simulated server folder; the truth stays with the harness. Masks
and encryption use fresh secret randomness on every run, so the chance thresholds are set
several standard deviations out (false-failure probability below 1e-4 per test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.audit.attacks import gain_inference, message_membership, update_recovery
from secure_fgrpo.audit.estimates import estimate_inputs
from secure_fgrpo.audit.simulate import simulate_federation
from secure_fgrpo.audit.view import load_view

CLIENTS, ROUNDS, DIM = 8, 3, 1025


def _attack(tmp: Path, backend: str, options: dict) -> tuple:
    truth = simulate_federation(tmp, backend, options, clients=CLIENTS, rounds=ROUNDS, dim=DIM, seed=11)
    view = load_view(tmp)
    est = estimate_inputs(view)
    assert len(est) == CLIENTS * ROUNDS  # one estimate per input message, nothing else
    return truth, est, update_recovery(est, truth), gain_inference(est, truth), message_membership(est, truth, seed=3)


def test_plaintext_attacks_succeed(tmp_path: Path) -> None:
    truth, est, rec, gain, mem = _attack(tmp_path, "plaintext", {})
    # The payload is [e·Δ, e]: the estimate is the input itself.
    m = est[0]
    assert np.allclose(m.vector[:-1], truth.weights[(m.round, m.sender)] * truth.deltas[(m.round, m.sender)])
    assert rec.verdict == "succeeds" and min(rec.details["cosines"]) > 0.999999
    # The sum alone gives much less about one client than its own message does.
    assert rec.details["sum_baseline_cosine"] < 0.8
    assert gain.verdict == "succeeds" and gain.details["spearman_weight"] > 0.999 and gain.value > 0.9
    assert mem.verdict == "succeeds" and mem.value == 1.0 and mem.details["epsilon_lower"] > 20


@pytest.mark.parametrize("backend, options", [
    ("masked", {}),
    ("masked", {"modulus_bits": 64, "prg": "chacha20"}),
    ("ckks", {}),
    ("ckks", {"scheme": "ckks", "reveal": "server-blind"}),  # CKKS is refused in server-learns-sum
])
def test_secure_backends_leave_attacks_at_chance(tmp_path: Path, backend: str, options: dict) -> None:
    truth, est, rec, gain, mem = _attack(tmp_path, backend, options)
    assert rec.verdict == "chance", rec.details["max_abs_cosine"]
    assert abs(float(np.mean(rec.details["cosines"]))) < 4 / np.sqrt((DIM - 1) * len(est))
    assert gain.verdict == "chance" and gain.details["p_value"] >= 1e-4
    assert mem.verdict == "chance" and abs(mem.value - 0.5) < 0.3
    # The harness still has its truth: the sums are exact, so the attacks are the only thing that changed.
    assert set(truth.sums) == {1, 2, 3}


def test_server_with_one_ckks_key_holder_reads_every_update(tmp_path: Path) -> None:
    """The CKKS backend shares ONE secret key among the institutions: a server that obtains any
    one client's secret context decrypts every client's archived input exactly."""
    from secure_fgrpo.secure_sum import make_backend
    from secure_fgrpo.secure_sum.base import client_state_dir
    from secure_fgrpo.secure_sum.ckks.codec import Codec
    from secure_fgrpo.secure_sum.ckks.keys import load_keys
    from secure_fgrpo.secure_sum.ckks.wire import decode_bundle

    truth = simulate_federation(tmp_path, "ckks", {}, clients=4, rounds=1, dim=513, seed=2)
    backend = make_backend("ckks", {})
    colluder = "sim00"
    codec = Codec(load_keys(client_state_dir(tmp_path, colluder), backend.params, secret=True, relin=False),
                  backend.params, truth.specs[1])
    view = load_view(tmp_path)
    read = 0
    for e in view.entries:
        if e.kind != "ciphertexts" or e.sender == colluder:
            continue
        b = decode_bundle(view.payload(e))
        vec = codec.decrypt_sum([codec.load(x, codec.input_level, "chunk") for x in b.chunks])
        w = truth.weights[(1, e.sender)]
        exact = np.concatenate([w * truth.deltas[(1, e.sender)], [w]])
        assert np.allclose(vec, exact, atol=codec.data_unit)  # BFV: within one fixed-point unit
        read += 1
    assert read == 3


def test_malicious_server_gets_one_input_decrypted_as_a_sum(tmp_path: Path) -> None:
    """Relabelling one client's ciphertexts as the "sum" WITHOUT the round's signed contributor
    list is refused since issue 13; with a valid list it still works (the ckks backend trusts the
    server to add): tests/test_ckks_attacks.py::test_a_forged_sum_ciphertext_with_valid_signatures_is_not_detected."""
    from secure_fgrpo.secure_sum import ProtocolError, make_backend
    from secure_fgrpo.secure_sum.base import SERVER, Message, SumSpec, client_state_dir
    from secure_fgrpo.secure_sum.ckks.server import KIND_DECRYPT_REQ
    from secure_fgrpo.secure_sum.ckks.wire import KIND_DECRYPT, Bundle, decode_bundle, encode_bundle

    names = ["h0", "h1", "h2"]
    backend = make_backend("ckks", {})
    backend.setup(tmp_path, names)
    spec = SumSpec(round=1, dim=65, data_bound=10.0, weight_bound=5.0, participants=tuple(names), threshold=2)
    rng = np.random.default_rng(0)
    inputs = {n: np.concatenate([rng.normal(0, 0.5, 64), [rng.uniform(1, 4)]]) for n in names}
    clients = {n: backend.client(n, spec, client_state_dir(tmp_path, n)) for n in names}
    for n in names:
        clients[n].set_input(inputs[n])
    victim = decode_bundle(clients["h0"].respond("input", None).payload)
    clients["h1"].respond("input", None)
    forged = encode_bundle(Bundle(KIND_DECRYPT, victim.scheme, victim.key_id, 1, spec.dim, victim.chunks, None))
    with pytest.raises(ProtocolError, match="threshold is 2"):
        clients["h1"].respond("decrypt", Message(1, "input", SERVER, "h1", KIND_DECRYPT_REQ, forged))
