"""Stable seeds for simulation randomness (never for secrets): derived by hashing, because
Python's ``hash()`` of strings changes from process to process."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    blob = "/".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF
