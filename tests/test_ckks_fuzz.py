"""Protocol-level fuzz of the CKKS/BFV wire format: 10,000 mutated messages (bit flips,
truncation, extension, splicing, re-framing), seeded. Only typed rejections may come out; a
mutated client input that the server accepts must leave the decoded sum unchanged unless the
mutation was re-signed by its own sender (a malicious client may encrypt anything it likes)."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ckks_support import make_fed, random_inputs

from secure_fgrpo.secure_sum import Message, ProtocolError, RoundAborted
from secure_fgrpo.secure_sum.ckks import client_dir, server_dir
from secure_fgrpo.secure_sum.ckks.binding import body_digest
from secure_fgrpo.secure_sum.ckks.wire import WireError, decode_bundle, encode_bundle
from secure_fgrpo.secure_sum.masked.keys import load_identity

DIM = 10
COUNTS = {  # 10,000 in all, over both schemes
    "bfv": {"input": 3000, "input re-signed": 1500, "sum reply": 1000},
    "ckks-blind": {"input": 2000, "input re-signed": 1500, "sum reply": 1000},
}


def mutate(rng: random.Random, payload: bytes, other: bytes) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:  # bit flips
        out = bytearray(payload)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:  # truncation
        return payload[: rng.randrange(len(payload))]
    if kind == 2:  # extension
        return payload + rng.randbytes(rng.randint(1, 200))
    if kind == 3:  # splice with another message
        cut = rng.randrange(len(payload))
        return payload[:cut] + other[cut:] if rng.random() < 0.5 else other[:cut] + payload[cut:]
    try:  # re-framing: a header field changed, the rest re-encoded
        b = decode_bundle(payload)
    except WireError:
        return payload
    field = rng.choice(["round", "dim", "key_id", "kind", "names", "gain", "chunks"])
    change = {"round": lambda: b.round + rng.choice([-1, 1, 1 << 20]), "dim": lambda: b.dim + rng.choice([-1, 1]),
              "key_id": lambda: rng.randbytes(16), "kind": lambda: rng.choice([1, 2, 3]),
              "names": lambda: (), "gain": lambda: b.chunks[0] if b.chunks else None,
              "chunks": lambda: b.chunks + b.chunks}[field]()
    try:
        return encode_bundle(dataclasses.replace(b, **{field: change}))
    except (ValueError, KeyError):
        return payload


@pytest.mark.parametrize("scheme", sorted(COUNTS))
def test_ten_thousand_mutated_messages_give_only_typed_rejections(tmp_path: Path, scheme: str) -> None:
    options = {} if scheme == "bfv" else {"scheme": "ckks", "reveal": "server-blind"}
    fed = make_fed(tmp_path, options, n=3)
    spec = fed.spec(dim=DIM, rnd=5, threshold=2)
    vecs = random_inputs(fed.names, DIM, seed=5)
    clients = {}
    msgs: dict[str, Message] = {}
    for n in fed.names:
        clients[n] = fed.backend.client(n, spec, client_dir(fed.run_dir, n))
        clients[n].set_input(vecs[n])
        msgs[n] = clients[n].respond("input", None)
    new_server = lambda: fed.backend.server(spec, server_dir(fed.run_dir))  # noqa: E731
    server = new_server()
    reply = server.process("input", dict(msgs))
    decryptor, honest_reply = next(iter(reply.items()))

    def decoded(c_reply: Message) -> np.ndarray:
        c = clients[decryptor]
        out = c.respond("decrypt", c_reply)
        return c.result() if out is None else np.frombuffer(out.payload, "<f8")

    baseline = decoded(honest_reply)
    identities = {n: load_identity(client_dir(fed.run_dir, n)) for n in fed.names}

    def resign(sender: str, payload: bytes) -> bytes:
        return payload[:-64] + clients[sender].binding.sign(identities[sender], sender, body_digest(payload))

    rng = random.Random(1234)
    outcomes: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    server = new_server()
    for what, count in COUNTS[scheme].items():
        for _ in range(count):
            if what == "sum reply":
                bad = dataclasses.replace(honest_reply, payload=mutate(rng, honest_reply.payload, msgs["h0"].payload))
                try:
                    decoded(bad)
                    outcomes["sum reply accepted"] += 1  # the sum is not authenticated (SECURITY.md)
                except ProtocolError as err:
                    assert err.sender == "server"
                    outcomes["sum reply rejected"] += 1
                continue
            victim = rng.choice(fed.names)
            other = msgs[rng.choice([n for n in fed.names if n != victim])].payload
            payload = mutate(rng, msgs[victim].payload, other)
            if what == "input re-signed" and len(payload) > 64:
                payload = resign(victim, payload)
            inbound = {**msgs, victim: dataclasses.replace(msgs[victim], payload=payload)}
            try:
                replies = server.process("input", inbound)
            except ProtocolError as err:
                assert err.sender == victim and err.stage == "input", err
                outcomes[f"{what} rejected"] += 1
                continue
            except RoundAborted:
                outcomes[f"{what} aborted"] += 1
                continue
            outcomes[f"{what} accepted"] += 1
            server = new_server()  # the accepted round is closed
            if payload == msgs[victim].payload:
                notes["no-op mutation accepted"] += 1
                continue
            if what == "input":
                notes["changed unsigned input accepted"] += 1
                # Not re-signed: accepted only if the decoded sum is the honest one.
                assert np.array_equal(decoded(replies[decryptor]), baseline)
            else:  # a malicious client's own input: decodes, or its decryptor refuses it typed
                try:
                    decoded(replies[decryptor])
                except ProtocolError as err:
                    assert victim == decryptor and "does not list the input this client signed" in err.reason
                    notes["decryptor refused a sum without the input it signed"] += 1
    assert sum(outcomes.values()) == sum(COUNTS[scheme].values())
    assert sum(sum(c.values()) for c in COUNTS.values()) >= 10_000
    # The signature covers every byte but itself: a changed, unsigned input is never accepted.
    assert notes["changed unsigned input accepted"] == 0
    assert outcomes["input rejected"] > 0.9 * COUNTS[scheme]["input"]
    print(scheme, dict(outcomes), dict(notes))
