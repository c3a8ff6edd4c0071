"""PubSwap's sealed blobs (federation/sealed.py, exchange.py): the round trip, and every way a
blob must fail to open — tampered, sent to the wrong recipient, replayed into another round,
relabelled with another sender — each dropping that blob only, with one line naming the sender."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import small_run
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.exchange import Relay, SwapParty, slots
from secure_fgrpo.federation.public_set import public_set
from secure_fgrpo.federation.sealed import (
    Offer,
    SealError,
    decode_record,
    encode_record,
    open_records,
    pack_relay,
    seal_records,
    sealed_size,
    unpack_relay,
)

BLOB = 32
KEYS = {n: X25519PrivateKey.generate() for n in ("a", "b", "c")}
PUB = {n: k.public_key() for n, k in KEYS.items()}


def _records(*texts: str) -> list[bytes]:
    return [encode_record(Offer(i, t), BLOB) for i, t in enumerate(texts)] + [encode_record(None, BLOB)]


def test_record_is_fixed_size_and_round_trips() -> None:
    rec = encode_record(Offer(3, "37.5"), BLOB)
    assert len(rec) == BLOB == len(encode_record(None, BLOB)) == len(encode_record(Offer(0, "x" * 27), BLOB))
    assert decode_record(rec, 4) == Offer(3, "37.5")
    assert decode_record(encode_record(None, BLOB), 4) is None
    with pytest.raises(ValueError, match="malformed"):
        decode_record(rec, 3)  # prompt index 3 of a 3-prompt set
    with pytest.raises(ValueError, match=r"pubswap\.blob_bytes"):
        encode_record(Offer(0, "x" * 28), BLOB)  # 5-byte head + 28 > 32


def test_seal_open_round_trip() -> None:
    recs = _records("12", "yes")
    blobs = seal_records(KEYS["a"], PUB["b"], 4, "a", "b", recs)
    assert len(blobs) == 3 * sealed_size(BLOB) and b"yes" not in blobs
    assert open_records(KEYS["b"], PUB["a"], 4, "a", "b", blobs, BLOB) == recs


@pytest.mark.parametrize("case", ["tampered", "wrong_recipient", "other_round", "other_sender", "swapped_slots"])
def test_refusals(case: str) -> None:
    recs = _records("12", "yes")
    blobs = bytearray(seal_records(KEYS["a"], PUB["b"], 4, "a", "b", recs))
    size = sealed_size(BLOB)
    if case == "tampered":
        blobs[size + 20] ^= 1  # one bit of slot 1
        out = open_records(KEYS["b"], PUB["a"], 4, "a", "b", bytes(blobs), BLOB)
        assert out == [recs[0], None, recs[2]]  # that blob only
        return
    if case == "wrong_recipient":
        out = open_records(KEYS["c"], PUB["a"], 4, "a", "c", bytes(blobs), BLOB)
    elif case == "other_round":
        out = open_records(KEYS["b"], PUB["a"], 5, "a", "b", bytes(blobs), BLOB)
    elif case == "other_sender":  # the server relabels a's blobs as c's
        out = open_records(KEYS["b"], PUB["c"], 4, "c", "b", bytes(blobs), BLOB)
    else:
        swapped = bytes(blobs[size:2 * size] + blobs[:size] + blobs[2 * size:])
        out = open_records(KEYS["b"], PUB["a"], 4, "a", "b", swapped, BLOB)
        assert out[2] == recs[2]
        out = out[:2]
    assert all(r is None for r in out)


def test_relay_layout_refuses_malformed() -> None:
    chunk = b"\0" * (2 * sealed_size(BLOB))
    relay = pack_relay(3, {"b": chunk, "a": chunk})
    assert unpack_relay(relay, 2, BLOB) == (3, {"a": chunk, "b": chunk})
    with pytest.raises(SealError, match="expected"):
        unpack_relay(relay[:-1], 2, BLOB)
    with pytest.raises(SealError, match="malformed head"):
        unpack_relay(b"\0\0\0\x05garbage", 2, BLOB)


def _party(cfg, name: str, root: Path) -> SwapParty:
    return SwapParty(cfg, name, KEYS[name], PUB, public_set(cfg), root / name)


def test_exchange_fixed_count_and_a_bad_blob_costs_only_itself(tmp_path: Path, caplog) -> None:
    cfg = config_from_dict(small_run(**{"pubswap.enabled": True, "pubswap.prompts": 2, "pubswap.responses": 2,
                                        "pubswap.blob_bytes": BLOB}))
    a, b, c = (_party(cfg, n, tmp_path) for n in "abc")
    idx = a.public.exchange(cfg, 1)
    relay = Relay(cfg, tmp_path / "server")
    msgs = {"a": a.seal(1, [Offer(idx[0], "37")], "abc"),
            "c": c.seal(1, [Offer(idx[0], "38"), Offer(idx[1], "b"), Offer(idx[1], "c")], "abc")}
    sizes = {len(m.payload) for m in msgs.values() if m is not None}
    assert sizes == {2 * slots(cfg) * sealed_size(BLOB)}  # 1 offer or 3: the same bytes on the wire
    for m in msgs.values():
        assert m is not None
        relay.collect(m, "abc")
    # tamper with one of c's blobs to b, as stored at the server
    stored = tmp_path / "server" / "round-1" / "b" / "c.bin"
    raw = bytearray(stored.read_bytes())
    raw[sealed_size(BLOB) + 30] ^= 0xFF  # c's slot 1 to b
    stored.write_bytes(bytes(raw))
    msg = relay.relay(2, "b")
    assert msg is not None and msg.recipient == "b" and msg.kind == "pubswap-relay"
    with caplog.at_level(logging.WARNING):
        b.receive(2, msg.payload)
    pool = b.job(2).pool
    assert pool == {idx[0]: ["37", "38"], idx[1]: ["c"]}  # c's "b" lost, nothing else
    assert b.job(2).dropped == 1 and b.job(2).train == idx
    lines = [r.getMessage() for r in caplog.records if "did not open" in r.getMessage()]
    assert len(lines) == 1 and "'c'" in lines[0] and "38" not in lines[0]
    # the same relay replayed one round later opens nothing
    with caplog.at_level(logging.WARNING):
        b.receive(3, msg.payload)
    assert b.job(3).pool == {} and any("not the last exchange" in r.getMessage() for r in caplog.records)
