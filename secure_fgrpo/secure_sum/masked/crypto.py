"""Round key material and the primitives around it, all from ``cryptography``.

Each client makes two fresh X25519 key pairs per round: ``c`` encrypts the Shamir shares it
sends to its neighbours (X25519 -> HKDF-SHA256 -> ChaCha20-Poly1305), ``s`` agrees the
pairwise mask seeds. Every HKDF call is bound to the protocol, the round, the public
parameters' digest and the ordered pair of names, so no key can be replayed across rounds,
purposes or pairs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DOMAIN = b"secure_fgrpo/masked/v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class CryptoError(ValueError):
    """A key, ciphertext or agreement was invalid. Never carries secret material."""


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class RoundKeys:
    """A client's two X25519 key pairs for one round. Lives in memory only."""

    c_private: X25519PrivateKey
    s_private: X25519PrivateKey

    @classmethod
    def generate(cls) -> RoundKeys:
        return cls(X25519PrivateKey.generate(), X25519PrivateKey.generate())

    @property
    def c_public(self) -> bytes:
        return _raw_public(self.c_private.public_key())

    @property
    def s_public(self) -> bytes:
        return _raw_public(self.s_private.public_key())

    def s_secret_bytes(self) -> bytes:
        """The mask key as 32 raw bytes, to be Shamir-shared (never logged)."""
        return _raw_private(self.s_private)

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return "RoundKeys(<secret>)"


def public_key(raw: bytes, what: str) -> X25519PublicKey:
    if len(raw) != KEY_BYTES:
        raise CryptoError(f"{what}: X25519 public key must have {KEY_BYTES} bytes, got {len(raw)}")
    return X25519PublicKey.from_public_bytes(raw)


def private_key(raw: bytes) -> X25519PrivateKey:
    if len(raw) != KEY_BYTES:
        raise CryptoError("X25519 private key must have 32 bytes")
    return X25519PrivateKey.from_private_bytes(raw)


def public_of(raw_private: bytes) -> bytes:
    return _raw_public(private_key(raw_private).public_key())


def hkdf(secret: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=DOMAIN + b"/" + info).derive(secret)


def context(purpose: str, round_: int, spec_digest: bytes, *names: str) -> bytes:
    """Unambiguous HKDF ``info``: purpose, round, parameters, then length-prefixed names."""
    parts = [purpose.encode(), round_.to_bytes(8, "big"), spec_digest]
    for n in names:
        raw = n.encode()
        parts.append(len(raw).to_bytes(2, "big") + raw)
    return b"|".join(parts)


def shared_secret(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """Raw X25519. Refuses low-order peer keys (all-zero shared secret). Never log it."""
    try:
        return private.exchange(public_key(peer_public, "peer key"))
    except ValueError as err:
        raise CryptoError(f"key agreement failed: {err}") from None


def agree(private: X25519PrivateKey, peer_public: bytes, info: bytes) -> bytes:
    """X25519 then HKDF-SHA256 (see :func:`shared_secret`)."""
    return hkdf(shared_secret(private, peer_public), info)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise CryptoError("ciphertext too short")
    try:
        return ChaCha20Poly1305(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise CryptoError("ciphertext failed authentication") from None


def confirm_tag(key: bytes, aad: bytes) -> bytes:
    """Key confirmation for a sealed share: the owner signs it with the ciphertext, so a holder
    that reveals the pair key can show the server which key the owner used (blame.py)."""
    return hkdf(key, b"confirm|" + aad)


def commit(secret: bytes, round_: int, spec_digest: bytes, owner: str) -> bytes:
    """Binding commitment to a uniformly random 32-byte seed (hiding: the seed has 256 bits)."""
    return hashlib.sha256(context("commit", round_, spec_digest, owner) + secret).digest()
