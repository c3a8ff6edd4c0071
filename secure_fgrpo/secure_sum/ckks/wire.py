"""Framing of the ciphertext bundles that travel, with strict decoding.

Layout (little-endian)::

    b"SFHE" | version u8 | kind u8 | scheme u8 | has_gain u8 | has_sig u8 | key_id 16B | round u32
    | dim u32 | n_chunks u32 | n_names u16 | names (u16 len + utf-8 + 96-byte attestation) ...
    | [gain blob] | chunk blobs | [signature 64B]
    where every blob is u32 length + a SEAL object.

An input carries no names and the sender's signature last (it signs everything before it,
binding.py); a sum carries, per contributor, the attestation (input digest + signature) the
server verified. Decoding refuses anything that does not consume the buffer exactly, so a
truncated or padded payload never reaches SEAL's parser.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"SFHE"
VERSION = 2
KIND_INPUT, KIND_SUM, KIND_DECRYPT = 1, 2, 3
KIND_NAMES = {KIND_INPUT: "input", KIND_SUM: "sum", KIND_DECRYPT: "decrypt-request"}
SCHEME_IDS = {"bfv": 1, "ckks": 2}
KEY_ID_BYTES = 16
_HEAD = struct.Struct("<4sBBBBB16sIII H")
SIGNATURE_BYTES = 64
ATTESTATION_BYTES = 96
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
MAX_NAMES = 65535


class WireError(ValueError):
    """A bundle is malformed; the message says what, never echoes payload bytes."""


@dataclass(frozen=True)
class Bundle:
    kind: int
    scheme: str
    key_id: bytes
    round: int
    dim: int
    chunks: tuple[bytes | memoryview, ...]
    gain: bytes | memoryview | None = None
    names: tuple[str, ...] = ()
    attestations: tuple[bytes, ...] = ()  # one per name: input digest (32 B) + signature (64 B)
    signature: bytes = b""  # the sender's, on an input; empty on a sum


def encode_bundle(b: Bundle) -> bytes:
    if len(b.key_id) != KEY_ID_BYTES:
        raise ValueError("key_id must be 16 bytes")
    if len(b.attestations) != len(b.names) or any(len(a) != ATTESTATION_BYTES for a in b.attestations):
        raise ValueError("one 96-byte attestation per name")
    if len(b.signature) not in (0, SIGNATURE_BYTES):
        raise ValueError("signature must be empty or 64 bytes")
    parts: list[bytes | memoryview] = [_HEAD.pack(MAGIC, VERSION, b.kind, SCHEME_IDS[b.scheme], int(b.gain is not None),
                        int(bool(b.signature)), b.key_id, b.round, b.dim, len(b.chunks), len(b.names))]
    for name, att in zip(b.names, b.attestations, strict=True):
        raw = name.encode("utf-8")
        parts += [_U16.pack(len(raw)), raw, att]
    blobs: list[bytes | memoryview] = [*([b.gain] if b.gain is not None else []), *b.chunks]
    for blob in blobs:
        parts += [_U32.pack(len(blob)), blob]
    parts.append(b.signature)
    return b"".join(parts)


def decode_bundle(data: bytes) -> Bundle:
    """Parse ``data`` or raise :class:`WireError`."""
    if len(data) < _HEAD.size:
        raise WireError(f"payload of {len(data)} bytes is shorter than the {_HEAD.size}-byte header")
    magic, version, kind, scheme_id, has_gain, has_sig, key_id, rnd, dim, n_chunks, n_names = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad magic: not a secure_fgrpo ciphertext bundle")
    if version != VERSION:
        raise WireError(f"unsupported bundle version {version}")
    if kind not in KIND_NAMES:
        raise WireError(f"unknown bundle kind {kind}")
    schemes = {v: k for k, v in SCHEME_IDS.items()}
    if scheme_id not in schemes:
        raise WireError(f"unknown scheme id {scheme_id}")
    if has_gain not in (0, 1) or has_sig not in (0, 1):
        raise WireError("has_gain and has_sig flags must be 0 or 1")
    # Each blob needs at least its 4-byte length: bounds the allocation before parsing.
    if n_chunks + has_gain > (len(data) - _HEAD.size) // _U32.size:
        raise WireError(f"{n_chunks} chunks cannot fit in {len(data)} bytes")
    pos = _HEAD.size
    view = memoryview(data)  # blobs are zero-copy views into the payload
    names, atts = [], []
    for _ in range(n_names):
        (ln,) = _read(_U16, data, pos)
        pos += _U16.size
        if pos + ln > len(data):
            raise WireError("truncated name list")
        try:
            names.append(data[pos:pos + ln].decode("utf-8"))
        except UnicodeDecodeError:
            raise WireError("a name is not valid utf-8") from None
        pos += ln
        if pos + ATTESTATION_BYTES > len(data):
            raise WireError("truncated attestation")
        atts.append(bytes(data[pos:pos + ATTESTATION_BYTES]))
        pos += ATTESTATION_BYTES
    blobs = []
    for _ in range(n_chunks + has_gain):
        (ln,) = _read(_U32, data, pos)
        pos += _U32.size
        if ln == 0 or pos + ln > len(data):
            raise WireError("truncated or empty ciphertext blob")
        blobs.append(view[pos:pos + ln])
        pos += ln
    signature = bytes(data[pos:pos + SIGNATURE_BYTES]) if has_sig else b""
    pos += SIGNATURE_BYTES if has_sig else 0
    if pos != len(data):
        raise WireError(f"{len(data) - pos} trailing bytes after the last blob" if pos < len(data)
                        else "truncated signature")
    gain = blobs.pop(0) if has_gain else None
    return Bundle(kind, schemes[scheme_id], key_id, rnd, dim, tuple(blobs), gain, tuple(names), tuple(atts),
                  signature)


def _read(st: struct.Struct, data: bytes, pos: int) -> tuple[int, ...]:
    if pos + st.size > len(data):
        raise WireError("truncated bundle")
    return st.unpack_from(data, pos)
