"""The homomorphic sum: correctness, both reveal modes, dropouts, key custody in transit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tenseal.sealapi as seal
from ckks_support import FullRecorder, SecretKeyDetector, make_fed, random_inputs

from secure_fgrpo.secure_sum import DropSchedule
from secure_fgrpo.secure_sum.ckks import client_dir, server_dir
from secure_fgrpo.secure_sum.ckks.codec import Codec
from secure_fgrpo.secure_sum.ckks.keys import load_keys
from secure_fgrpo.secure_sum.ckks.params import BFV_4096


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_default_parameters_sum_within_1e6_and_server_learns_only_the_sum(tmp_path: Path) -> None:
    fed = make_fed(tmp_path, {}, n=3)  # default: BFV-4096, server-learns-sum
    spec = fed.spec(dim=9)
    vecs = random_inputs(fed.names, 9, seed=1)
    out, server, clients = fed.run(spec, vecs)
    assert fed.backend.params.name == "bfv-4096"
    assert out.contributors == tuple(fed.names) and not out.aborted
    assert _rel(out.total, sum(vecs.values())) < 1e-6
    assert all(c.result() is None for c in clients.values())  # learns-sum: clients get nothing back
    assert not server.codec.keys.context.is_private()


def test_bfv_integer_sum_is_exact(tmp_path: Path) -> None:
    fed = make_fed(tmp_path, {}, n=3)
    dim = 5000  # two ciphertexts of 4096 slots
    spec = fed.spec(dim=dim)
    vecs = random_inputs(fed.names, dim, seed=2)
    codecs = {n: Codec(load_keys(client_dir(tmp_path, n), BFV_4096, secret=True, relin=False), BFV_4096, spec)
              for n in fed.names}
    ints = sum(codecs[n].encode_integers(v) for n, v in vecs.items())
    server = fed.backend.server(spec, server_dir(tmp_path)).codec
    evaluator = seal.Evaluator(server.ctx)
    acc = None
    for n, v in vecs.items():
        chunks, _ = codecs[n].encrypt_input(v)
        cts = [server.load(c, server.input_level, "chunk") for c in chunks]
        if acc is None:
            acc = cts
        else:
            for a, c in zip(acc, cts, strict=True):
                evaluator.add_inplace(a, c)
    dec = codecs["h0"].decrypt_integers(acc)
    assert np.array_equal(dec, ints)
    # and the rounding error of the fixed point is far below 1e-6 relative
    assert _rel(codecs["h0"].from_units(dec.astype(float)), sum(vecs.values())) < 1e-9


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_server_blind_gives_every_client_the_sum_and_the_server_nothing(tmp_path: Path, scheme: str) -> None:
    fed = make_fed(tmp_path, {"reveal": "server-blind", "scheme": scheme}, n=3)
    dim = 3000
    spec = fed.spec(dim=dim, rnd=4)
    vecs = random_inputs(fed.names, dim, seed=3)
    out, server, clients = fed.run(spec, vecs)
    expected = sum(vecs.values())
    assert out.total is None and out.contributors == tuple(fed.names)
    results = [c.result() for c in clients.values()]
    assert all(_rel(r, expected) < 1e-6 for r in results)
    assert all(np.array_equal(r, results[0]) for r in results)  # everyone applies the same update
    # Nothing plaintext-aggregate on the server: no float array of the vector's size anywhere
    # in its state, no decrypted total, and no secret key to make one.
    assert server._total is None and not server.codec.keys.context.is_private()
    assert server.codec.keys.secret_key is None
    arrays = [v for obj in (server, server.codec) for v in vars(obj).values() if isinstance(v, np.ndarray)]
    assert not any(a.shape == expected.shape and np.allclose(a, expected, rtol=1e-3) for a in arrays)
    assert all(isinstance(v, float) for v in out.stats.values())


def test_dropouts_cost_nothing_and_decryptor_rotates(tmp_path: Path) -> None:
    fed = make_fed(tmp_path, {}, n=4)  # CKKS is refused in server-learns-sum
    dim = 100
    vecs = random_inputs(fed.names, dim, seed=4)
    drops = DropSchedule({"input": {"h1"}})
    for rnd in range(3):
        rec = FullRecorder()
        out, _server, _ = fed.run(fed.spec(dim=dim, rnd=rnd, threshold=2), vecs, drops, rec)
        alive = ["h0", "h2", "h3"]
        assert out.contributors == tuple(alive)
        assert _rel(out.total, sum(vecs[n] for n in alive)) < 1e-6
        decryptor = [m.sender for m in rec.messages if m.stage == "decrypt"]
        assert decryptor == [alive[rnd % 3]]


def test_decryptor_dropout_aborts_unless_a_second_decryptor_answers(tmp_path: Path) -> None:
    vecs = random_inputs(["h0", "h1", "h2"], 50, seed=5)
    fed = make_fed(tmp_path / "one", {}, n=3)
    out, _, _ = fed.run(fed.spec(dim=50, rnd=0), vecs, DropSchedule({"decrypt": {"h0"}}))
    assert out.aborted and "no decryptor answered" in out.reason and out.total is None
    fed2 = make_fed(tmp_path / "two", {"decryptors": 2}, n=3)
    out2, _, _ = fed2.run(fed2.spec(dim=50, rnd=0), vecs, DropSchedule({"decrypt": {"h0"}}))
    assert not out2.aborted and _rel(out2.total, sum(vecs.values())) < 1e-6


def test_too_few_inputs_abort_the_round(tmp_path: Path) -> None:
    fed = make_fed(tmp_path, {}, n=3)
    vecs = random_inputs(fed.names, 20, seed=6)
    out, _, _ = fed.run(fed.spec(dim=20, threshold=3), vecs, DropSchedule({"input": {"h2"}}))
    assert out.aborted and "threshold" in out.reason and out.contributors == ()


@pytest.mark.parametrize("reveal", ["server-learns-sum", "server-blind"])
def test_no_secret_key_bytes_reach_the_server(tmp_path: Path, reveal: str) -> None:
    fed = make_fed(tmp_path, {"reveal": reveal}, n=3)
    rec = FullRecorder()
    fed.run(fed.spec(dim=4000), random_inputs(fed.names, 4000, seed=7), recorder=rec)
    detector = SecretKeyDetector(client_dir(tmp_path, "h0"), BFV_4096)
    # Positive controls: the detector does fire on a leak of either form.
    secret_ctx = (client_dir(tmp_path, "h0") / "ckks" / "secret_context.bin").read_bytes()
    assert detector.leaks(b"header" + secret_ctx) and detector.leaks(detector.raw[1000:3000])
    assert len(rec.messages) >= 3
    assert not any(detector.leaks(m.payload) for m in rec.messages)
    server_files = [p for p in server_dir(tmp_path).rglob("*") if p.is_file()]
    assert server_files and not any(detector.leaks(p.read_bytes()) for p in server_files)
