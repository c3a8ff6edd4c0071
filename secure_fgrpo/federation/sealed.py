"""PubSwap's sealed response blobs: one correct response, sealed from one institution to
another, so that the server which relays it reads neither the text nor its length.

Why this shape: the server must not read any institution's responses (issue 16), and the sizes
and counts it sees must not depend on them. A record is ``flag | prompt index | length | text``
zero-padded to ``blob_bytes``; a sender seals exactly ``prompts x responses`` records to each
other participant (dummy records, flag 0, fill the slots it has no correct response for). Each
record is sealed with AES-256-GCM under a key from X25519 between the sender's and the
recipient's long-term sealing keys (secure_sum/identity.py) and HKDF-SHA256; the AAD binds the
version, the exchange round, sender, recipient and slot, so a blob replayed into another round,
relayed to another recipient, relabelled with another sender or moved to another slot fails its
tag. The nonce is random (a crashed and re-run round reseals under the same key).

Layouts (all public): a sender's message is, for each other participant in sorted order, its
``slots`` blobs; a relay is a length-prefixed JSON head ``{"round", "senders"}`` followed by
each named sender's ``slots`` blobs for this recipient.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"secure_fgrpo/pubswap/v1"
NONCE = 12
TAG = 16
_HEAD = struct.Struct(">BHH")  # real (1) or dummy (0), public prompt index, text bytes
_LEN = struct.Struct(">I")


class SealError(ValueError):
    """A blob or relay that does not open; the message names the sender, never a secret."""


@dataclass(frozen=True)
class Offer:
    """One correct response a client offers: the public prompt's index and the text."""

    index: int
    text: str


def sealed_size(blob_bytes: int) -> int:
    return NONCE + blob_bytes + TAG


def encode_record(offer: Offer | None, blob_bytes: int) -> bytes:
    """The plaintext of one blob: exactly ``blob_bytes`` (None: a dummy record)."""
    if offer is None:
        return bytes(blob_bytes)
    text = offer.text.encode("utf-8")
    if _HEAD.size + len(text) > blob_bytes:
        raise ValueError(f"pubswap.blob_bytes: a response of {len(text)} bytes does not fit in {blob_bytes}")
    return _HEAD.pack(1, offer.index, len(text)) + text + bytes(blob_bytes - _HEAD.size - len(text))


def decode_record(record: bytes, n_prompts: int) -> Offer | None:
    """The offer in a record (None for a dummy); ValueError when the record is malformed."""
    flag, index, length = _HEAD.unpack_from(record)
    if flag == 0:
        return None
    if flag != 1 or index >= n_prompts or _HEAD.size + length > len(record):
        raise ValueError("malformed record (flag, prompt index or length)")
    return Offer(index, record[_HEAD.size:_HEAD.size + length].decode("utf-8"))


def fits(text: str, blob_bytes: int) -> bool:
    return _HEAD.size + len(text.encode("utf-8")) <= blob_bytes


def _aead(own: X25519PrivateKey, peer: X25519PublicKey, round_: int, sender: str, recipient: str) -> AESGCM:
    info = VERSION + b"\0key\0" + _names(round_, sender, recipient)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(own.exchange(peer))
    return AESGCM(key)


def _names(round_: int, sender: str, recipient: str) -> bytes:
    return struct.pack(">Q", round_) + sender.encode() + b"\0" + recipient.encode() + b"\0"


def _aad(round_: int, sender: str, recipient: str, slot: int) -> bytes:
    return VERSION + b"\0aad\0" + _names(round_, sender, recipient) + struct.pack(">I", slot)


def seal_records(own: X25519PrivateKey, peer: X25519PublicKey, round_: int, sender: str, recipient: str,
                 records: Sequence[bytes]) -> bytes:
    """The sealed blobs of ``records`` (each of the same size), slot by slot."""
    aead = _aead(own, peer, round_, sender, recipient)
    out = []
    for slot, record in enumerate(records):
        nonce = os.urandom(NONCE)
        out.append(nonce + aead.encrypt(nonce, record, _aad(round_, sender, recipient, slot)))
    return b"".join(out)


def open_records(own: X25519PrivateKey, peer: X25519PublicKey, round_: int, sender: str, recipient: str,
                 blobs: bytes, blob_bytes: int) -> list[bytes | None]:
    """The records of a sender's blobs to this recipient; None where a blob's tag fails."""
    size = sealed_size(blob_bytes)
    if len(blobs) % size:
        raise SealError(f"pubswap: blobs from sender {sender!r} are {len(blobs)} bytes, not a multiple of {size}")
    aead = _aead(own, peer, round_, sender, recipient)
    out: list[bytes | None] = []
    for slot in range(len(blobs) // size):
        blob = blobs[slot * size:(slot + 1) * size]
        try:
            out.append(aead.decrypt(blob[:NONCE], blob[NONCE:], _aad(round_, sender, recipient, slot)))
        except InvalidTag:
            out.append(None)
    return out


def others(participants: Sequence[str], sender: str) -> list[str]:
    return sorted(p for p in participants if p != sender)


def split_message(payload: bytes, sender: str, participants: Sequence[str], slots: int,
                  blob_bytes: int) -> dict[str, bytes]:
    """The server's split of a sender's message into each recipient's blobs (public layout)."""
    chunk = slots * sealed_size(blob_bytes)
    recipients = others(participants, sender)
    if len(payload) != chunk * len(recipients):
        raise SealError(f"pubswap: message from sender {sender!r} is {len(payload)} bytes, expected "
                        f"{chunk * len(recipients)} ({len(recipients)} recipients x {slots} blobs)")
    return {r: payload[i * chunk:(i + 1) * chunk] for i, r in enumerate(recipients)}


def pack_relay(round_: int, by_sender: dict[str, bytes]) -> bytes:
    head = json.dumps({"round": round_, "senders": sorted(by_sender)}).encode()
    return _LEN.pack(len(head)) + head + b"".join(by_sender[s] for s in sorted(by_sender))


def unpack_relay(payload: bytes, slots: int, blob_bytes: int) -> tuple[int, dict[str, bytes]]:
    """(exchange round, each named sender's blobs); SealError naming what is malformed."""
    try:
        (n,) = _LEN.unpack_from(payload)
        head = json.loads(payload[_LEN.size:_LEN.size + n].decode("utf-8"))
        round_, senders = int(head["round"]), [str(s) for s in head["senders"]]
    except (struct.error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise SealError("pubswap relay: malformed head (not {round, senders})") from None
    chunk = slots * sealed_size(blob_bytes)
    body = payload[_LEN.size + n:]
    if len(body) != chunk * len(senders) or len(set(senders)) != len(senders):
        raise SealError(f"pubswap relay: {len(body)} bytes of blobs for {len(senders)} sender(s), "
                        f"expected {chunk} each")
    return round_, {s: body[i * chunk:(i + 1) * chunk] for i, s in enumerate(senders)}
