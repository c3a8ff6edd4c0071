"""Long-term Ed25519 identities and the roster of their public keys.

An institution's identity key lives in its own ``state_dir`` (0600 file in a 0700 folder) and
signs its round-key advertisement and its view of the survivor set. The roster (name -> public
key, JSON) is public: every client and the server load it to verify those signatures, so a
server cannot invent participants or forge consistency acknowledgements.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

SUBDIR = "masked"
IDENTITY_FILE = "identity_ed25519.key"
ROSTER_VERSION = 1
SIGNATURE_BYTES = 64
PUBLIC_BYTES = 32


class KeyFileError(ValueError):
    """An identity or roster file is missing, malformed, too open, or does not match."""


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def identity_path(state_dir: Path) -> Path:
    return Path(state_dir) / SUBDIR / IDENTITY_FILE


def load_or_create_identity(state_dir: Path) -> Ed25519PrivateKey:
    """The party's identity key, created on first use with 0600 permissions."""
    path = identity_path(state_dir)
    if path.exists():
        return load_identity(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    log.info("created identity key %s", path)
    return key


def load_identity(state_dir: Path) -> Ed25519PrivateKey:
    path = identity_path(state_dir)
    if not path.exists():
        raise KeyFileError(f"{path}: no identity key (run the backend's setup, or create one)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path}: identity key has permissions {oct(mode)}; it must be 0600")
    raw = path.read_bytes()
    if len(raw) != 32:
        raise KeyFileError(f"{path}: identity key must be 32 raw bytes, got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return _raw_public(key.public_key())


def write_roster(path: Path, roster: dict[str, bytes]) -> None:
    """Write atomically; the roster is public (0644 is fine), but written in one piece."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": ROSTER_VERSION, "clients": {n: roster[n].hex() for n in sorted(roster)}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def load_roster(path: Path) -> dict[str, Ed25519PublicKey]:
    """Parse and validate a roster file: every entry a 32-byte Ed25519 key in hex."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyFileError(f"secure_sum.roster: {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise KeyFileError(f"secure_sum.roster: {path} is not JSON ({err.msg})") from None
    if not isinstance(doc, dict) or doc.get("version") != ROSTER_VERSION or not isinstance(doc.get("clients"), dict):
        raise KeyFileError(f"secure_sum.roster: {path} must be {{'version': 1, 'clients': {{name: hex key}}}}")
    out: dict[str, Ed25519PublicKey] = {}
    for name, hexkey in doc["clients"].items():
        try:
            raw = bytes.fromhex(hexkey)
        except (TypeError, ValueError):
            raise KeyFileError(f"secure_sum.roster: entry {name!r} is not hex") from None
        if len(raw) != PUBLIC_BYTES:
            raise KeyFileError(f"secure_sum.roster: entry {name!r} must be a 32-byte Ed25519 key")
        out[name] = Ed25519PublicKey.from_public_bytes(raw)
    return out


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
