"""SEAL objects <-> bytes.

TenSEAL's SEAL bindings (``tenseal.sealapi``) save and load only through a file path. A
memfd (an anonymous in-memory file) gives that path without touching a disk, so ciphertexts
never land in a file that could outlive the process. Each owner keeps its own instance: no
module-level state. Only ciphertexts and public objects pass through here, never secret keys.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from typing import Any

SEAL_MAGIC = 0xA15E
SEAL_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compr mode, reserved, size
COMPR_NONE, COMPR_ZSTD = 0, 2


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
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def check_seal_header(data: bytes | memoryview, max_size: int) -> str | None:
    """Cheap structural check of a SEAL blob before SEAL parses it; returns a reason or None."""
    if len(data) < SEAL_HEADER.size:
        return f"{len(data)} bytes is shorter than a SEAL header"
    magic, hsize, _major, _minor, compr, _res, size = SEAL_HEADER.unpack_from(data)
    if magic != SEAL_MAGIC or hsize != SEAL_HEADER.size:
        return "not a SEAL object (bad magic)"
    if compr not in (COMPR_NONE, COMPR_ZSTD):
        return f"unsupported compression mode {compr}"
    if size != len(data):
        return f"SEAL header says {size} bytes, got {len(data)}"
    if size > max_size:
        return f"{size} bytes exceeds the {max_size}-byte limit for one ciphertext"
    return None
