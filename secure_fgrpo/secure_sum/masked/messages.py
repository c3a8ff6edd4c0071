"""Typed protocol messages and their strict binary encoding.

Layout: ``b"SFM" | version | kind tag`` then the fields in declaration order. A fixed field is
raw bytes of its exact size; a blob is u32 length + bytes; a name is u8 length + UTF-8; a
list is u32 count + items. The decoder accepts exactly one encoding per message: wrong
magic/version/tag, any length that overruns the buffer, invalid UTF-8, an empty name, a
signature that is neither absent nor 64 bytes, or trailing bytes all raise
:class:`DecodeError` naming the message kind and the field. Nothing else can escape it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar

MAGIC = b"SFM"
VERSION = 1


class DecodeError(ValueError):
    """Malformed message bytes; ``kind`` and ``field`` say where."""

    def __init__(self, kind: str, field_name: str, reason: str) -> None:
        super().__init__(f"{kind}.{field_name}: {reason}")
        self.kind, self.field, self.reason = kind, field_name, reason


# --- field types: each knows how to write and read itself -----------------------------------

_U32 = struct.Struct("<I")


class _Reader:
    def __init__(self, data: bytes | memoryview, kind: str) -> None:
        self.mv = memoryview(data).cast("B")
        self.pos = 0
        self.kind = kind

    def take(self, n: int, field_name: str) -> memoryview:
        end = self.pos + n
        if end > len(self.mv):
            raise DecodeError(self.kind, field_name, f"needs {n} bytes, {len(self.mv) - self.pos} left")
        out = self.mv[self.pos:end]
        self.pos = end
        return out

    def u8(self, field_name: str) -> int:
        if self.pos >= len(self.mv):
            raise DecodeError(self.kind, field_name, "needs 1 byte, 0 left")
        self.pos += 1
        return self.mv[self.pos - 1]

    def u32(self, field_name: str) -> int:
        return _U32.unpack(self.take(4, field_name))[0]

    def count(self, field_name: str) -> int:
        n = self.u32(field_name)
        if n > len(self.mv) - self.pos:  # every item takes at least one byte
            raise DecodeError(self.kind, field_name, f"count {n} exceeds the remaining bytes")
        return n


@dataclass(frozen=True)
class Fixed:
    size: int

    def enc(self, out: list[bytes], v: bytes, where: str) -> None:
        if len(v) != self.size:
            raise ValueError(f"{where}: must have {self.size} bytes, got {len(v)}")
        out.append(bytes(v))

    def dec(self, r: _Reader, where: str) -> bytes:
        return bytes(r.take(self.size, where))


@dataclass(frozen=True)
class Blob:
    """Variable-length bytes; ``view`` decodes to a zero-copy memoryview (big vectors)."""

    view: bool = False

    def enc(self, out: list[bytes], v: bytes | memoryview, where: str) -> None:
        out.append(_U32.pack(len(v)))
        out.append(v if isinstance(v, bytes) else bytes(v))

    def dec(self, r: _Reader, where: str) -> bytes | memoryview:
        raw = r.take(r.u32(where), where)
        return raw if self.view else bytes(raw)


@dataclass(frozen=True)
class Sig:
    """Absent (b"") or an Ed25519 signature (64 bytes)."""

    def enc(self, out: list[bytes], v: bytes, where: str) -> None:
        if len(v) not in (0, 64):
            raise ValueError(f"{where}: signature must have 0 or 64 bytes")
        out.append(bytes((len(v),)))
        out.append(bytes(v))

    def dec(self, r: _Reader, where: str) -> bytes:
        n = r.u8(where)
        if n not in (0, 64):
            raise DecodeError(r.kind, where, f"signature has {n} bytes (expected 0 or 64)")
        return bytes(r.take(n, where))


@dataclass(frozen=True)
class Name:
    def enc(self, out: list[bytes], v: str, where: str) -> None:
        raw = v.encode("utf-8")
        if not 1 <= len(raw) <= 255:
            raise ValueError(f"{where}: name must have 1..255 UTF-8 bytes")
        out.append(bytes((len(raw),)))
        out.append(raw)

    def dec(self, r: _Reader, where: str) -> str:
        raw = bytes(r.take(r.u8(where), where))
        if not raw:
            raise DecodeError(r.kind, where, "empty name")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(r.kind, where, "name is not valid UTF-8") from None


_NAME = Name()


@dataclass(frozen=True)
class Names:
    """A list of names (u32 count + names), decoded to ``tuple[str, ...]``."""

    def enc(self, out: list[bytes], v: tuple[str, ...], where: str) -> None:
        out.append(_U32.pack(len(v)))
        for name in v:
            _NAME.enc(out, name, where)

    def dec(self, r: _Reader, where: str) -> tuple[str, ...]:
        return tuple(_NAME.dec(r, where) for _ in range(r.count(where)))


@dataclass(frozen=True)
class ListOf:
    items: tuple[Any, ...]  # one field type per tuple element

    def enc(self, out: list[bytes], v: tuple[tuple[Any, ...], ...], where: str) -> None:
        out.append(_U32.pack(len(v)))
        width = len(self.items)
        for item in v:
            if len(item) != width:
                raise ValueError(f"{where}: list items need {width} values")
            for t, x in zip(self.items, item, strict=True):
                t.enc(out, x, where)

    def dec(self, r: _Reader, where: str) -> tuple[tuple[Any, ...], ...]:
        return tuple(tuple(t.dec(r, where) for t in self.items) for _ in range(r.count(where)))


class Wire:
    """Mixin: ``KIND``/``TAG``/``SCHEMA`` declare the encoding; fields follow SCHEMA's order."""

    KIND: ClassVar[str]
    TAG: ClassVar[int]
    SCHEMA: ClassVar[tuple[Any, ...]]

    def to_bytes(self) -> bytes:
        out = [MAGIC, bytes([VERSION, self.TAG])]
        for f, ftype in zip(fields(self), self.SCHEMA, strict=True):  # type: ignore[arg-type]
            ftype.enc(out, getattr(self, f.name), f"{self.KIND}.{f.name}")
        return b"".join(out)


KEY = Fixed(32)
SHARE = Fixed(66)


@dataclass(frozen=True)
class Advertise(Wire):
    """Client -> server: the round's two X25519 public keys, signed by the identity key."""

    KIND: ClassVar[str] = "advertise"
    TAG: ClassVar[int] = 1
    SCHEMA: ClassVar[tuple[Any, ...]] = (KEY, KEY, Sig())
    c_public: bytes
    s_public: bytes
    signature: bytes


@dataclass(frozen=True)
class KeyBook(Wire):
    """Server -> client: the advertisements of the client's neighbours."""

    KIND: ClassVar[str] = "keybook"
    TAG: ClassVar[int] = 2
    SCHEMA: ClassVar[tuple[Any, ...]] = (ListOf((Name(), KEY, KEY, Sig())),)
    entries: tuple[tuple[str, bytes, bytes, bytes], ...]


@dataclass(frozen=True)
class ShareUpload(Wire):
    """Client -> server: a commitment to the self-mask seed and, per holder, the sealed share,
    a key-confirmation tag and the owner's signature over both (verifiable blame)."""

    KIND: ClassVar[str] = "shares"
    TAG: ClassVar[int] = 3
    SCHEMA: ClassVar[tuple[Any, ...]] = (KEY, ListOf((Name(), Blob(), KEY, Sig())))
    commitment: bytes
    entries: tuple[tuple[str, bytes, bytes, bytes], ...]


@dataclass(frozen=True)
class SharePlain(Wire):
    """Inside the AEAD: who shares with whom, and the two shares (never seen by the server)."""

    KIND: ClassVar[str] = "share-plain"
    TAG: ClassVar[int] = 4
    SCHEMA: ClassVar[tuple[Any, ...]] = (Name(), Name(), SHARE, SHARE)
    owner: str
    holder: str
    self_share: bytes
    key_share: bytes

    def __repr__(self) -> str:
        return f"SharePlain(owner={self.owner!r}, holder={self.holder!r}, <secret shares>)"


@dataclass(frozen=True)
class Forwarded(Wire):
    """Server -> client: the sealed shares addressed to it, by owner, as the owner signed them."""

    KIND: ClassVar[str] = "forward"
    TAG: ClassVar[int] = 5
    SCHEMA: ClassVar[tuple[Any, ...]] = (ListOf((Name(), Blob(), KEY, Sig())),)
    entries: tuple[tuple[str, bytes, bytes, bytes], ...]


@dataclass(frozen=True)
class MaskedInput(Wire):
    """Client -> server: the masked fixed-point vector (little-endian words), a complaint
    ``(owner, pair key)`` for each sealed share that would not open (blame.py), and the client's
    signature over both (context.masked_parts): nobody in between can change its input."""

    KIND: ClassVar[str] = "masked"
    TAG: ClassVar[int] = 6
    SCHEMA: ClassVar[tuple[Any, ...]] = (Blob(view=True), ListOf((Name(), KEY)), Sig())
    words: bytes | memoryview
    complaints: tuple[tuple[str, bytes], ...] = ()
    signature: bytes = b""


@dataclass(frozen=True)
class SurvivorList(Wire):
    """Server -> client: the clients whose masked input is in the sum (U3)."""

    KIND: ClassVar[str] = "survivors"
    TAG: ClassVar[int] = 7
    SCHEMA: ClassVar[tuple[Any, ...]] = (Names(),)
    names: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencyAck(Wire):
    """Client -> server: signature on (round, parameters, U3); a bare digest when unsigned."""

    KIND: ClassVar[str] = "ack"
    TAG: ClassVar[int] = 8
    SCHEMA: ClassVar[tuple[Any, ...]] = (KEY, Sig())
    digest: bytes
    signature: bytes


@dataclass(frozen=True)
class UnmaskRequest(Wire):
    """Server -> client: U3 again, every acknowledgement collected, and what it asks for:
    self-mask shares of survivors, mask-key shares of peers that dropped before masking."""

    KIND: ClassVar[str] = "unmask-request"
    TAG: ClassVar[int] = 9
    SCHEMA: ClassVar[tuple[Any, ...]] = (Names(), ListOf((Name(), KEY, Sig())), Names(), Names())
    names: tuple[str, ...]
    acks: tuple[tuple[str, bytes, bytes], ...]
    self_requests: tuple[str, ...]
    key_requests: tuple[str, ...]


@dataclass(frozen=True)
class UnmaskShares(Wire):
    """Client -> server: self-mask shares of survivors, mask-key shares of dropped peers."""

    KIND: ClassVar[str] = "unmask"
    TAG: ClassVar[int] = 10
    SCHEMA: ClassVar[tuple[Any, ...]] = (ListOf((Name(), SHARE)), ListOf((Name(), SHARE)))
    self_shares: tuple[tuple[str, bytes], ...]
    key_shares: tuple[tuple[str, bytes], ...]


TYPES: dict[str, type[Wire]] = {t.KIND: t for t in (
    Advertise, KeyBook, ShareUpload, SharePlain, Forwarded, MaskedInput, SurvivorList,
    ConsistencyAck, UnmaskRequest, UnmaskShares)}


def decode(kind: str, payload: bytes | memoryview) -> Any:
    """Parse ``payload`` as message ``kind``; DecodeError on anything but a valid encoding."""
    cls = TYPES.get(kind)
    if cls is None:
        raise DecodeError(kind if isinstance(kind, str) else repr(kind), "kind", "unknown message kind")
    r = _Reader(payload, kind)
    if bytes(r.take(3, "magic")) != MAGIC:
        raise DecodeError(kind, "magic", "not a secure_fgrpo masked message")
    version, tag = r.u8("version"), r.u8("tag")
    if version != VERSION:
        raise DecodeError(kind, "version", f"unsupported version {version}")
    if tag != cls.TAG:
        raise DecodeError(kind, "tag", f"tag {tag} is not a {kind} message")
    values = [ftype.dec(r, f.name) for f, ftype in zip(fields(cls), cls.SCHEMA, strict=True)]  # type: ignore[arg-type]
    if r.pos != len(r.mv):
        raise DecodeError(kind, "end", f"{len(r.mv) - r.pos} trailing byte(s)")
    return cls(*values)
