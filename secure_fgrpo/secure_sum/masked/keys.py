"""The masked backend's keys: the parties' Ed25519 identities and the roster.

They now live in :mod:`secure_fgrpo.secure_sum.identity` (the ckks backend signs with the same
identities); these names stay importable from here. ``SUBDIR`` is where the masked backend
keeps its own files (the simulation's roster under ``server/keys/masked/``).
"""

from __future__ import annotations

from ..identity import (
    PUBLIC_BYTES,
    ROSTER_VERSION,
    SIGNATURE_BYTES,
    KeyFileError,
    RosterEntry,
    identity_path,
    load_identity,
    load_or_create_identity,
    load_roster,
    load_roster_entries,
    public_bytes,
    verify,
    write_roster,
)

SUBDIR = "masked"

__all__ = [
    "PUBLIC_BYTES", "ROSTER_VERSION", "SIGNATURE_BYTES", "SUBDIR", "KeyFileError", "RosterEntry",
    "identity_path", "load_identity", "load_or_create_identity", "load_roster", "load_roster_entries",
    "public_bytes", "verify", "write_roster",
]
