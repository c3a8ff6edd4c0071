"""Issue 13's attacks on the CKKS/BFV backend, each written as a test: the ones the fix stops
fail now (and succeeded on the code before it), the one it does not stop is shown working."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tenseal.sealapi as seal
from ckks_support import FullRecorder, make_fed, random_inputs, resign

from secure_fgrpo.secure_sum import Message, ProtocolError, make_backend
from secure_fgrpo.secure_sum.ckks import client_dir, server_dir
from secure_fgrpo.secure_sum.ckks.binding import body_digest
from secure_fgrpo.secure_sum.ckks.codec import level_at
from secure_fgrpo.secure_sum.ckks.keys import load_keys
from secure_fgrpo.secure_sum.ckks.sealio import SEAL_HEADER
from secure_fgrpo.secure_sum.ckks.wire import decode_bundle, encode_bundle

N = 4096  # ckks-4096 / bfv-4096: one full chunk holds N reals


def _coeffs(obj, start: int, n: int) -> list[int]:
    if hasattr(obj, "coeff_count"):  # a plaintext (or the secret key's data)
        return [int(obj[i]) for i in range(start, start + n)]
    arr = obj.dyn_array()
    return [int(arr.at(i)) for i in range(start, start + n)]


def recover_key(codec, sum_ct, total: np.ndarray) -> list[int]:
    """Li-Micciancio: Encode(decrypted sum) = c0 + c1*s (mod q), pointwise in SEAL's NTT form."""
    y = np.zeros(N)
    y[: total.size] = codec.to_units(total.copy())
    pt = seal.Plaintext()
    codec.encoder.encode(y[0::2] + 1j * y[1::2], list(codec.input_level.parms_id), codec.input_level.scale, pt)
    q = level_at(codec.ctx, 1)[1][0]
    p, c0, c1 = _coeffs(pt, 0, N), _coeffs(sum_ct, 0, N), _coeffs(sum_ct, N, N)
    return [((p[j] - c0[j]) * pow(c1[j], -1, q)) % q for j in range(N)]


def test_a_ckks_decryption_that_reaches_the_server_reveals_the_key(tmp_path: Path) -> None:
    """Teeth: the server's own sum ciphertext plus the decoded sum give every key coefficient."""
    fed = make_fed(tmp_path, {"scheme": "ckks", "reveal": "server-blind"}, n=3)
    spec = fed.spec(dim=N)
    vecs = random_inputs(fed.names, N, seed=1)
    rec = FullRecorder()
    _, server, clients = fed.run(spec, vecs, recorder=rec)
    codec = server.codec
    # The server recomputes the sum from what it received (the payloads it archives):
    cts = [codec.load(decode_bundle(m.payload).chunks[0], codec.input_level, "x")
           for m in rec.messages if m.kind == "ciphertexts"]
    ev = seal.Evaluator(codec.ctx)
    acc = cts[0]
    for ct in cts[1:]:
        ev.add_inplace(acc, ct)
    # What server-learns-sum used to hand the server: the decryptor's decoded sum.
    s = recover_key(codec, acc, clients["h0"].result())
    sk = load_keys(client_dir(tmp_path, "h0"), fed.backend.params, secret=True, relin=False).secret_key
    assert s == _coeffs(sk.data(), 0, N)  # all 4096 coefficients (NTT form, data prime)


def test_the_same_attack_on_the_exact_bfv_sum_the_server_receives_fails(tmp_path: Path) -> None:
    """server-learns-sum runs on BFV: the server gets the exact integers m, and Encode gives
    round(q·m/t) = c0 + c1·s - e (mod q) with the decryption noise e unknown: the solve fails.
    Control: with e = 0 the same solver recovers the key, so the noise is what stops it."""
    fed = make_fed(tmp_path, {}, n=3)
    spec = fed.spec(dim=N)
    vecs = random_inputs(fed.names, N, seed=1)
    rec = FullRecorder()
    out, server, _ = fed.run(spec, vecs, recorder=rec)
    codec = server.codec
    ev = seal.Evaluator(codec.ctx)
    cts = [codec.load(decode_bundle(m.payload).chunks[0], codec.input_level, "x")
           for m in rec.messages if m.kind == "ciphertexts"]
    acc = cts[0]
    for ct in cts[1:]:
        ev.add_inplace(acc, ct)
    ev.transform_to_ntt_inplace(acc)
    pid, (q,) = level_at(codec.ctx, 1)
    t = codec.t
    ints = codec.encode_integers(out.total.copy())  # what the decryptor's float sum pins down
    m = seal.Plaintext()
    codec.encoder.encode(np.where(ints < 0, ints + t, ints).astype(np.uint64).tolist(), m)
    mc = _coeffs(m, 0, m.coeff_count()) + [0] * (N - m.coeff_count())

    def ntt(coeffs: list[int]) -> list[int]:
        p = seal.Plaintext(" + ".join(f"{c:X}x^{i}" for i, c in reversed(list(enumerate(coeffs))) if c) or "0")
        ev.transform_to_ntt_inplace(p, list(pid))
        return _coeffs(p, 0, N)

    delta, r = divmod(q, t)  # round(q·m/t) = Δ·m + round(r·m/t), both terms valid plaintexts
    target = [(delta * a + b) % q for a, b in zip(ntt(mc), ntt([(r * c + t // 2) // t for c in mc]), strict=True)]
    c0, c1 = _coeffs(acc, 0, N), _coeffs(acc, N, N)
    keys = load_keys(client_dir(tmp_path, "h0"), fed.backend.params, secret=True, relin=False)
    key = _coeffs(keys.secret_key.data(), 0, N)  # keep ``keys`` alive: SEAL objects borrow from it

    def solve(c0_: list[int]) -> list[int]:
        return [((target[j] - c0_[j]) * pow(c1[j], -1, q)) % q for j in range(N)]

    assert sum(a == b for a, b in zip(solve(c0), key, strict=True)) <= 2  # chance level: 1/q per coefficient
    noiseless = [(target[j] - c1[j] * key[j]) % q for j in range(N)]
    assert solve(noiseless) == key


@pytest.mark.parametrize("options", [{"scheme": "ckks"}, {"params": "nvflare"},
                                     {"weights": "server", "tau": 1.0, "gain_clip": 2.0}])
def test_ckks_is_refused_wherever_the_server_would_receive_a_decryption(options: dict) -> None:
    refused = r"secure_sum.options.scheme: CKKS with reveal = 'server-learns-sum' is refused"
    with pytest.raises(ValueError, match=refused):
        make_backend("ckks", options)
    make_backend("ckks", {**options, "reveal": "server-blind"})  # the clients keep the decryption
    assert make_backend("ckks", {}).params.scheme == "bfv"  # server-learns-sum stays on exact BFV


# ----------------------------------------------------------------------------- binding
@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    return make_fed(tmp_path_factory.mktemp("bind"), {}, n=3)


def _inputs(fed, rnd: int) -> tuple[dict[str, Message], dict[str, np.ndarray]]:
    spec = fed.spec(dim=10, rnd=rnd, threshold=2)
    vecs = random_inputs(fed.names, 10, seed=rnd)
    out = {}
    for n in fed.names:
        c = fed.backend.client(n, spec, client_dir(fed.run_dir, n))
        c.set_input(vecs[n])
        out[n] = c.respond("input", None)
    return out, vecs


def _patch_size(blob: bytes) -> bytes:
    head = list(SEAL_HEADER.unpack_from(blob))
    head[-1] = len(blob)
    return SEAL_HEADER.pack(*head) + blob[SEAL_HEADER.size:]


@pytest.mark.parametrize("tail", ["zeros", "itself"])
def test_a_ciphertext_with_trailing_bytes_is_refused(fed, tail: str) -> None:
    """Even signed by its own sender (a malicious client), SEAL's size field patched to match."""
    msgs, _ = _inputs(fed, 1)
    b = decode_bundle(msgs["h1"].payload)
    blob = bytes(b.chunks[0])
    padded = _patch_size(blob + (bytes(64) if tail == "zeros" else blob))
    payload = resign(fed, fed.spec(dim=10, rnd=1, threshold=2), "h1",
                     encode_bundle(dataclasses.replace(b, chunks=(padded,))))
    server = fed.backend.server(fed.spec(dim=10, rnd=1, threshold=2), server_dir(fed.run_dir))
    with pytest.raises(ProtocolError, match=r"chunk 0: .*bytes after the ciphertext's zstd frame") as err:
        server.process("input", {**msgs, "h1": dataclasses.replace(msgs["h1"], payload=payload)})
    assert err.value.sender == "h1"


def test_a_round_1_ciphertext_reframed_as_round_2_is_refused_by_the_server(fed) -> None:
    old, _ = _inputs(fed, 1)
    new, _ = _inputs(fed, 2)
    b = dataclasses.replace(decode_bundle(old["h0"].payload), round=2)
    reframed = Message(2, "input", "h0", "server", "ciphertexts", encode_bundle(b))
    server = fed.backend.server(fed.spec(dim=10, rnd=2, threshold=2), server_dir(fed.run_dir))
    with pytest.raises(ProtocolError, match="not signed by the sender's roster key for this round"):
        server.process("input", {**new, "h0": reframed})
    # Unchanged, its signature names round 1: refused as well.
    with pytest.raises(ProtocolError, match=r"round 1|not signed"):
        server.process("input", {**new, "h0": dataclasses.replace(old["h0"], round=2)})


def _sum_reply(fed, rnd: int, msgs: dict[str, Message]) -> Message:
    server = fed.backend.server(fed.spec(dim=10, rnd=rnd, threshold=2), server_dir(fed.run_dir))
    (reply,) = server.process("input", msgs).values()
    return reply


def _decryptor(fed, rnd: int, msgs: dict[str, Message], name: str):
    """A client that sent ``msgs[name]`` this round (its signed digest is remembered)."""
    spec = fed.spec(dim=10, rnd=rnd, threshold=2)
    c = fed.backend.client(name, spec, client_dir(fed.run_dir, name))
    c.set_input(np.zeros(10))
    c.respond("input", None)
    c._sent = body_digest(msgs[name].payload)
    return c


def test_decryptors_refuse_a_sum_not_tied_to_t_signed_inputs_of_this_round(fed) -> None:
    msgs, vecs = _inputs(fed, 3)
    reply = _sum_reply(fed, 3, msgs)
    rnd_name = reply.recipient
    b = decode_bundle(reply.payload)
    cases = {
        "below threshold": (dataclasses.replace(b, names=b.names[:1], attestations=b.attestations[:1]),
                            "threshold is 2"),
        "stranger": (dataclasses.replace(b, names=("h0", "h1", "mallory"), attestations=b.attestations),
                     "inconsistent with the round"),
        "forged signature": (dataclasses.replace(b, attestations=tuple(a[:32] + bytes(64) for a in b.attestations)),
                             "no valid signature|does not list"),
    }
    old, _ = _inputs(fed, 1)
    old_att = _sum_reply(fed, 1, old)
    ob = decode_bundle(old_att.payload)
    mixed = tuple(oa if n != rnd_name else a for n, a, oa in zip(b.names, b.attestations, ob.attestations, strict=True))
    cases["round-1 attestation in a round-3 sum"] = (dataclasses.replace(b, attestations=mixed),
                                                     "no valid signature on an input of this round")
    for what, (bundle, pattern) in cases.items():
        c = _decryptor(fed, 3, msgs, rnd_name)
        with pytest.raises(ProtocolError, match=pattern) as err:
            c.respond("decrypt", dataclasses.replace(reply, payload=encode_bundle(bundle)))
        assert err.value.sender == "server", what
    # The honest reply decrypts to the sum.
    total = np.frombuffer(_decryptor(fed, 3, msgs, rnd_name).respond("decrypt", reply).payload, "<f8")
    assert np.allclose(total, sum(vecs.values()), atol=1e-6)


def test_a_forged_sum_ciphertext_with_valid_signatures_is_not_detected(fed) -> None:
    """Does NOT hold (SECURITY.md): the signatures tie the contributor list to this round, not
    the ciphertext to their sum. A malicious server that sends the decryptor one client's
    ciphertext as "the sum" gets that client's input back. The ckks backend assumes a server
    that adds honestly (honest-but-curious); the masked backend does not."""
    msgs, vecs = _inputs(fed, 4)
    reply = _sum_reply(fed, 4, msgs)
    victim = next(n for n in fed.names if n != reply.recipient)
    forged = dataclasses.replace(decode_bundle(reply.payload), chunks=decode_bundle(msgs[victim].payload).chunks)
    # A fresh seeded ciphertext loads as a full one once expanded; the server re-serialises it.
    srv = fed.backend.server(fed.spec(dim=10, rnd=4, threshold=2), server_dir(fed.run_dir))
    ct = srv.codec.load(forged.chunks[0], srv.codec.input_level, "victim")
    forged = dataclasses.replace(forged, chunks=(srv.codec.dump(ct),))
    c = _decryptor(fed, 4, msgs, reply.recipient)
    got = np.frombuffer(c.respond("decrypt", dataclasses.replace(reply, payload=encode_bundle(forged))).payload, "<f8")
    assert np.allclose(got, vecs[victim], atol=1e-6)  # the victim's own [e*delta, e]


@pytest.mark.parametrize("bad", [np.ones(10) * (1 + 1j), [1j] * 10, np.array(["1"] * 10)])
def test_a_complex_or_non_numeric_input_is_refused_naming_the_client(fed, bad) -> None:
    c = fed.backend.client("h0", fed.spec(dim=10), client_dir(fed.run_dir, "h0"))
    with pytest.raises(ValueError, match=r"^h0: input vector has dtype .*real numbers"):
        c.set_input(bad)
