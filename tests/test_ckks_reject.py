"""Every rejection path: malformed bytes, wrong length, another context or key, replay."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ckks_support import FullRecorder, make_fed, random_inputs, resign

from secure_fgrpo.secure_sum import Message, ProtocolError, SumClient, run_secure_sum
from secure_fgrpo.secure_sum.ckks import client_dir, server_dir
from secure_fgrpo.secure_sum.ckks.codec import Codec
from secure_fgrpo.secure_sum.ckks.keys import init_keys, load_keys
from secure_fgrpo.secure_sum.ckks.params import ParamSet
from secure_fgrpo.secure_sum.ckks.wire import decode_bundle, encode_bundle

DIM = 5000  # two BFV ciphertexts


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    global FED
    FED = make_fed(tmp_path_factory.mktemp("fed"), {}, n=3)
    return FED


@pytest.fixture(scope="module")
def messages(fed) -> dict[str, Message]:
    spec = fed.spec(dim=DIM, rnd=2)
    vecs = random_inputs(fed.names, DIM, seed=11)
    out = {}
    for n in fed.names:
        c = fed.backend.client(n, spec, client_dir(fed.run_dir, n))
        c.set_input(vecs[n])
        out[n] = c.respond("input", None)
    return out


def _server(fed):
    return fed.backend.server(fed.spec(dim=DIM, rnd=2), server_dir(fed.run_dir))


def _with(msg: Message, **changes) -> Message:
    return dataclasses.replace(msg, **changes)


FED = None  # set by the fed fixture: _rebundle re-signs as the sender (a malicious client's own message)


def _rebundle(msg: Message, **changes) -> Message:
    b = dataclasses.replace(decode_bundle(msg.payload), **changes)
    return _with(msg, payload=resign(FED, FED.spec(dim=DIM, rnd=2), msg.sender, encode_bundle(b)))


def _chunk(msg: Message, i: int) -> memoryview:
    return decode_bundle(msg.payload).chunks[i]


def _expect(fed, inbound: dict[str, Message], sender: str, pattern: str) -> None:
    with pytest.raises(ProtocolError, match=pattern) as err:
        _server(fed).process("input", inbound)
    assert err.value.sender == sender and err.value.stage == "input"


CASES: dict[str, tuple[Callable[[Message], Message], str]] = {
    "random bytes": (lambda m: _with(m, payload=bytes(range(256)) * 4), "malformed bundle: bad magic"),
    "truncated": (lambda m: _with(m, payload=m.payload[:-7]), "malformed bundle: truncated"),
    "trailing bytes": (lambda m: _with(m, payload=m.payload + b"\0"), "trailing bytes"),
    "empty": (lambda m: _with(m, payload=b""), "shorter than the"),
    "one chunk missing": (lambda m: _rebundle(m, chunks=(_chunk(m, 0),)), "1 ciphertexts, expected 2"),
    "wrong dim": (lambda m: _rebundle(m, dim=DIM + 1), "dim 5001"),
    "stale round in bundle": (lambda m: _rebundle(m, round=1), "bundle for round 1"),
    "stale round in message": (lambda m: _with(m, round=1), "message for round 1"),
    "another federation key": (lambda m: _rebundle(m, key_id=b"\x01" * 16), "key id mismatch"),
    "garbage inside a chunk": (
        lambda m: _rebundle(m, chunks=(bytes(_chunk(m, 0)[:40]) + bytes(len(_chunk(m, 0)) - 40), _chunk(m, 1))),
        "chunk 0: not a valid ciphertext"),
    "chunk size lies in its header": (
        lambda m: _rebundle(m, chunks=(bytes(_chunk(m, 0)) + b"xx", _chunk(m, 1))),
        "SEAL header says"),
    "wrong kind": (lambda m: _with(m, kind="plain-sum"), "unexpected message kind"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_rejected_naming_the_sender(fed, messages, case: str) -> None:
    tamper, pattern = CASES[case]
    inbound = dict(messages)
    inbound["h1"] = tamper(messages["h1"])
    _expect(fed, inbound, "h1", pattern)


def test_a_ciphertext_from_other_parameters_is_rejected(fed, messages, tmp_path: Path) -> None:
    other = ParamSet("bfv-other", "bfv", 4096, (60, 40), plain_modulus_bits=30)
    init_keys(tmp_path, ["x"], other, relin=False)
    spec = fed.spec(dim=DIM, rnd=2)
    codec = Codec(load_keys(client_dir(tmp_path, "x"), other, secret=True, relin=False), other, spec)
    chunks, _ = codec.encrypt_input(random_inputs(["x"], DIM, seed=3)["x"])
    inbound = dict(messages)
    inbound["h2"] = _rebundle(messages["h2"], chunks=tuple(chunks))
    _expect(fed, inbound, "h2", "not a valid ciphertext for this context")


def test_a_stranger_is_rejected(fed, messages) -> None:
    inbound = dict(messages)
    inbound["mallory"] = _with(inbound.pop("h0"), sender="mallory")
    _expect(fed, inbound, "mallory", "not a participant")


def test_replays_are_never_added_twice(fed, messages) -> None:
    # The same payload from a second sender.
    inbound = dict(messages)
    inbound["h2"] = _with(messages["h0"], sender="h2")
    _expect(fed, inbound, "h2", "not signed by the sender's roster key")
    # Another sender's ciphertext inside a fresh bundle.
    inbound = dict(messages)
    stolen = decode_bundle(messages["h0"].payload).chunks[0]
    inbound["h1"] = _rebundle(messages["h1"], chunks=(stolen, decode_bundle(messages["h1"].payload).chunks[1]))
    _expect(fed, inbound, "h1", "already received")
    # A second input after the stage was summed.
    server = _server(fed)
    server.process("input", dict(messages))
    with pytest.raises(ProtocolError, match="second input in the same round") as err:
        server.process("input", {"h0": messages["h0"]})
    assert err.value.sender == "h0"


def test_decrypt_stage_rejects_non_decryptors_and_bad_sums(fed, messages) -> None:
    server = _server(fed)
    replies = server.process("input", dict(messages))
    (decryptor,) = replies  # one decryptor: sorted(contributors)[round % 3] = h2
    assert decryptor == "h2"
    fake = Message(2, "decrypt", "h0", "server", "plain-sum", np.zeros(DIM).tobytes())
    with pytest.raises(ProtocolError, match="not asked to decrypt") as err:
        server.process("decrypt", {"h0": fake})
    assert err.value.sender == "h0"
    short = _with(fake, sender="h2", payload=b"\0" * 8)
    with pytest.raises(ProtocolError, match="plain sum has 8 bytes"):
        server.process("decrypt", {"h2": short})
    nan = _with(fake, sender="h2", payload=np.full(DIM, np.nan).tobytes())
    with pytest.raises(ProtocolError, match="non-finite"):
        server.process("decrypt", {"h2": nan})


def test_client_rejects_a_tampered_server_reply(fed, messages) -> None:
    spec = fed.spec(dim=DIM, rnd=2)
    server = _server(fed)
    reply = server.process("input", dict(messages))["h2"]
    client = fed.backend.client("h2", spec, client_dir(fed.run_dir, "h2"))
    bad = _with(reply, payload=encode_bundle(dataclasses.replace(decode_bundle(reply.payload),
                                                                 chunks=decode_bundle(reply.payload).chunks[:1])))
    with pytest.raises(ProtocolError, match="does not match") as err:
        client.respond("decrypt", bad)
    assert err.value.sender == "server"
    with pytest.raises(ProtocolError, match="malformed sum bundle"):
        client.respond("decrypt", _with(reply, payload=reply.payload[:100]))


class _Tampering(SumClient):
    """Wraps an honest client and corrupts its input message."""

    def __init__(self, inner: SumClient) -> None:
        super().__init__(inner.name, inner.spec)
        self.inner = inner

    def set_input(self, vector: np.ndarray) -> None:
        self.inner.set_input(vector)

    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        msg = self.inner.respond(stage, inbound)
        return _with(msg, payload=msg.payload[:-1]) if stage == "input" else msg


def test_driver_drops_the_offender_and_sums_the_rest(fed) -> None:
    spec = fed.spec(dim=DIM, rnd=0)
    vecs = random_inputs(fed.names, DIM, seed=12)
    clients = {n: fed.backend.client(n, spec, client_dir(fed.run_dir, n)) for n in fed.names}
    clients["h1"] = _Tampering(clients["h1"])
    for n in fed.names:
        clients[n].set_input(vecs[n])
    out = run_secure_sum(fed.backend.server(spec, server_dir(fed.run_dir)), clients, FullRecorder())
    assert out.contributors == ("h0", "h2")
    expected = vecs["h0"] + vecs["h2"]
    assert np.linalg.norm(out.total - expected) / np.linalg.norm(expected) < 1e-6


def test_set_input_refuses_out_of_bound_vectors(fed) -> None:
    spec = fed.spec(dim=10)
    client = fed.backend.client("h0", spec, client_dir(fed.run_dir, "h0"))
    with pytest.raises(ValueError, match="exceeds data_bound"):
        client.set_input(np.concatenate([np.full(9, 100.0), [1.0]]))
    with pytest.raises(ValueError, match="shape"):
        client.set_input(np.ones(11))
