"""Every input is bound to (round, sender, round digest) by the sender's Ed25519 identity.

Issue 13 found that a round-1 ciphertext re-framed as round 2 was accepted: nothing tied a
ciphertext to the round it was made for. Now each client signs the digest of its input bundle
together with the round's digest (every public parameter of the round: spec, parameter set,
reveal mode, key id). The server verifies before it adds; the decrypting clients verify the
list of (contributor, input digest, signature) that comes with the sum, so the server cannot
claim a sum over strangers, over fewer than t signed inputs, or over inputs of another round.

The identities and the roster are the masked backend's (one Ed25519 key per institution,
masked/keys.py); only the signed bytes differ (a CKKS domain label).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..base import SumSpec
from ..masked.keys import verify
from .params import ParamSet
from .wire import SIGNATURE_BYTES

PROTOCOL = "secure_fgrpo/ckks/v2"
DIGEST_BYTES = 32


def round_digest(spec: SumSpec, params: ParamSet, key_id: bytes, mode: dict[str, object]) -> bytes:
    """SHA-256 of every public parameter of the round (``mode``: reveal, weights, tau, ...)."""
    doc = {
        "protocol": PROTOCOL, "round": spec.round, "dim": spec.dim,
        "data_bound": float(spec.data_bound).hex(), "weight_bound": float(spec.weight_bound).hex(),
        "participants": list(spec.participants), "threshold": spec.threshold, "seed": spec.seed,
        "params": params.describe(), "key_id": key_id.hex(), "mode": mode,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).digest()


def body_digest(payload: bytes) -> bytes:
    """Digest of an input payload without its trailing signature (what the sender signs)."""
    return hashlib.sha256(payload[:-SIGNATURE_BYTES]).digest()


@dataclass(frozen=True)
class Binding:
    """The round's digest and the roster: signs and checks input attestations."""

    round: int
    digest: bytes
    roster: dict[str, Ed25519PublicKey]

    def _bytes(self, sender: str, body: bytes) -> bytes:
        name = sender.encode()
        return b"|".join([PROTOCOL.encode() + b"/input", self.round.to_bytes(8, "big"), self.digest,
                          len(name).to_bytes(4, "big") + name, body])

    def sign(self, identity: Ed25519PrivateKey, sender: str, body: bytes) -> bytes:
        return identity.sign(self._bytes(sender, body))

    def verify(self, sender: str, body: bytes, signature: bytes) -> bool:
        key = self.roster.get(sender)
        return key is not None and len(body) == DIGEST_BYTES and verify(key, signature, self._bytes(sender, body))
