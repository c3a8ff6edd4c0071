"""SEAL objects <-> bytes.

TenSEAL's SEAL bindings (``tenseal.sealapi``) save and load only through a file path. A
memfd (an anonymous in-memory file) gives that path without touching a disk, so ciphertexts
never land in a file that could outlive the process. Each owner keeps its own instance: no
module-level state. Only ciphertexts and public objects pass through here, never secret keys.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
from typing import Any

SEAL_MAGIC = 0xA15E
SEAL_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compr mode, reserved, size
COMPR_NONE, COMPR_ZSTD = 0, 2
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class SealIO:
    """Round-trips SEAL objects through an in-memory file."""

    def __init__(self) -> None:
        self._tmpdir: str | None = None
        if hasattr(os, "memfd_create"):
            self._fd = os.memfd_create("secure_fgrpo_seal", os.MFD_CLOEXEC)
            self._path = f"/proc/self/fd/{self._fd}"
        else:  # pragma: no cover - non-Linux fallback: a private 0700 temp dir
            self._tmpdir = tempfile.mkdtemp(prefix="sfgrpo_seal_")
            self._path = os.path.join(self._tmpdir, "obj")
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)

    def dump(self, obj: Any) -> bytes:
        """Serialise ``obj`` (Ciphertext, Serializable ciphertext, ...) with SEAL's own format."""
        obj.save(self._path)
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0)

    def load(self, obj: Any, context: Any, data: bytes | memoryview) -> Any:
        """Fill ``obj`` from ``data``; SEAL checks the object is valid for ``context``."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        obj.load(context, self._path)
        return obj

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def check_seal_header(data: bytes | memoryview, max_size: int, content_size: int | None = None) -> str | None:
    """Cheap structural check of a SEAL blob before SEAL parses it; returns a reason or None.

    SEAL stops reading at the end of the object and ignores whatever follows inside its
    declared size (found by issue 13: a ciphertext with trailing bytes was accepted). So the
    blob must be exactly one zstd frame (what SEAL writes) that ends at the last byte, and,
    when ``content_size`` is given, whose declared content is exactly that many bytes."""
    if len(data) < SEAL_HEADER.size:
        return f"{len(data)} bytes is shorter than a SEAL header"
    magic, hsize, _major, _minor, compr, _res, size = SEAL_HEADER.unpack_from(data)
    if magic != SEAL_MAGIC or hsize != SEAL_HEADER.size:
        return "not a SEAL object (bad magic)"
    if compr != COMPR_ZSTD:
        return f"unsupported compression mode {compr} (SEAL writes zstd)"
    if size != len(data):
        return f"SEAL header says {size} bytes, got {len(data)}"
    if size > max_size:
        return f"{size} bytes exceeds the {max_size}-byte limit for one ciphertext"
    return _check_zstd_frame(bytes(data[SEAL_HEADER.size:]), content_size)


def zstd_content_size(frame: bytes) -> int | None:
    """The frame content size a zstd frame header declares (None if absent or malformed)."""
    head = _zstd_header(frame)
    return None if isinstance(head, str) else head[1]


def _zstd_header(frame: bytes) -> tuple[int, int | None] | str:
    """(header length, declared content size) of a zstd frame, or a reason it is malformed."""
    if len(frame) < 6 or frame[:4] != ZSTD_MAGIC:
        return "not a single zstd frame"
    fhd = frame[4]
    fcs_flag, single, checksum_reserved, dict_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 3) & 1, fhd & 3
    if checksum_reserved:
        return "zstd frame header has its reserved bit set"
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    fcs_len = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if pos + fcs_len > len(frame):
        return "truncated zstd frame header"
    if fcs_len == 0:
        return pos, None
    fcs = int.from_bytes(frame[pos:pos + fcs_len], "little") + (256 if fcs_len == 2 else 0)
    return pos + fcs_len, fcs


def _check_zstd_frame(frame: bytes, content_size: int | None) -> str | None:
    """Walk the frame's block headers (no decompression): it must end exactly at the end."""
    head = _zstd_header(frame)
    if isinstance(head, str):
        return head
    pos, fcs = head
    if content_size is not None and fcs != content_size:
        return f"ciphertext content of {fcs} bytes, expected {content_size}"
    checksum = (frame[4] >> 2) & 1
    while True:
        if pos + 3 > len(frame):
            return "truncated zstd block"
        bh = int.from_bytes(frame[pos:pos + 3], "little")
        last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
        if btype == 3:
            return "reserved zstd block type"
        pos += 3 + (1 if btype == 1 else bsize)
        if pos > len(frame):
            return "truncated zstd block"
        if last:
            break
    pos += 4 * checksum
    if pos != len(frame):
        if pos < len(frame):
            return f"{len(frame) - pos} bytes after the ciphertext's zstd frame"
        return "truncated zstd frame"
    return None
