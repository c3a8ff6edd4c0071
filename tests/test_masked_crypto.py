"""Round keys, HKDF contexts, AEAD for shares, Ed25519 identities and the roster."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secure_fgrpo.secure_sum.masked import crypto, keys


def test_agreement_is_symmetric_and_context_bound() -> None:
    a, b = crypto.RoundKeys.generate(), crypto.RoundKeys.generate()
    info = crypto.context("pair-mask", 3, b"d" * 32, "a", "b")
    k_ab = crypto.agree(a.s_private, b.s_public, info)
    assert k_ab == crypto.agree(b.s_private, a.s_public, info)
    assert k_ab != crypto.agree(b.s_private, a.s_public, crypto.context("pair-mask", 4, b"d" * 32, "a", "b"))
    assert k_ab != crypto.agree(a.c_private, b.c_public, info)
    # Length-prefixed names: ("ab", "c") and ("a", "bc") must not collide.
    assert crypto.context("x", 1, b"", "ab", "c") != crypto.context("x", 1, b"", "a", "bc")


@pytest.mark.parametrize("raw", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(crypto.CryptoError, match="agreement"):
        crypto.agree(crypto.RoundKeys.generate().c_private, raw, b"i")
    with pytest.raises(crypto.CryptoError, match="32 bytes"):
        crypto.agree(crypto.RoundKeys.generate().c_private, raw[:31], b"i")


def test_private_key_round_trip_and_secret_free_repr() -> None:
    k = crypto.RoundKeys.generate()
    raw = k.s_secret_bytes()
    assert crypto.public_of(raw) == k.s_public
    assert raw.hex() not in repr(k) and "secret" in repr(k)


def test_seal_open_and_tampering() -> None:
    key, aad = os.urandom(32), b"round|a|b"
    blob = crypto.seal(key, b"share bytes", aad)
    assert crypto.open_sealed(key, blob, aad) == b"share bytes"
    assert blob != crypto.seal(key, b"share bytes", aad)  # fresh nonce
    flipped = bytes([blob[-1] ^ 1]) if blob else b""
    for bad_blob, bad_aad, bad_key in [(blob[:-1] + flipped, aad, key), (blob, b"round|a|c", key),
                                       (blob, aad, os.urandom(32)), (blob[:10], aad, key)]:
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(bad_key, bad_blob, bad_aad)


def test_commitment_binds_seed_round_and_owner() -> None:
    seed = os.urandom(32)
    c = crypto.commit(seed, 1, b"d", "a")
    assert c == crypto.commit(seed, 1, b"d", "a")
    assert len({c, crypto.commit(os.urandom(32), 1, b"d", "a"), crypto.commit(seed, 2, b"d", "a"),
                crypto.commit(seed, 1, b"d", "b")}) == 4


def test_identity_is_created_private_and_reloaded(tmp_path: Path) -> None:
    key = keys.load_or_create_identity(tmp_path)
    path = keys.identity_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = keys.load_or_create_identity(tmp_path)
    assert keys.public_bytes(again) == keys.public_bytes(key)


def test_identity_file_problems_are_refused(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyFileError, match="no identity key"):
        keys.load_identity(tmp_path)
    keys.load_or_create_identity(tmp_path)
    path = keys.identity_path(tmp_path)
    os.chmod(path, 0o644)
    with pytest.raises(keys.KeyFileError, match="0600"):
        keys.load_identity(tmp_path)
    os.chmod(path, 0o600)
    path.write_bytes(b"x" * 31)
    with pytest.raises(keys.KeyFileError, match="32 raw bytes"):
        keys.load_identity(tmp_path)


def test_roster_round_trip_and_signatures(tmp_path: Path) -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = tmp_path / "roster.json"
    keys.write_roster(path, {"a": keys.public_bytes(a), "b": keys.public_bytes(b)})
    roster = keys.load_roster(path)
    assert set(roster) == {"a", "b"}
    sig = a.sign(b"msg")
    assert keys.verify(roster["a"], sig, b"msg")
    assert not keys.verify(roster["b"], sig, b"msg")
    assert not keys.verify(roster["a"], sig, b"other")
    assert not keys.verify(roster["a"], sig[:-1], b"msg")


@pytest.mark.parametrize("content, match", [
    ("not json", "not JSON"),
    (json.dumps({"version": 3, "clients": {}}), "version"),
    (json.dumps({"version": 1, "clients": {"a": "zz"}}), "not hex"),
    (json.dumps({"version": 1, "clients": {"a": "00" * 31}}), "32-byte"),
])
def test_bad_rosters_are_refused(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(keys.KeyFileError, match=match):
        keys.load_roster(path)
    with pytest.raises(keys.KeyFileError, match="does not exist"):
        keys.load_roster(tmp_path / "missing.json")
