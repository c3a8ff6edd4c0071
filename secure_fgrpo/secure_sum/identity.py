"""Each party's long-term keys, made on its own machine, and the public roster.

A party (an institution) holds two independent key pairs in its own folder (0600 files in a
0700 folder): Ed25519 to sign (masked advertisements, ckks input bindings, sealed-key
envelopes) and X25519 to receive a sealed secret (the CKKS context). One key, one purpose: the
signing key is never used for key agreement. Only public halves leave the folder: an *entry*
(name + both public keys) is sent out of band to whoever assembles the roster, and every party
compares the printed fingerprints over another channel (a call), so a server that relays the
roster cannot swap a key unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..fileio import write_private

log = logging.getLogger(__name__)

SUBDIR = "identity"
SIGNING_FILE = "ed25519.key"
SEALING_FILE = "x25519.key"
ENTRY_FILE = "public.json"
ROSTER_VERSION = 2
SIGNATURE_BYTES = 64
PUBLIC_BYTES = 32
_NAME = re.compile(r"[^/.\x00-\x1f\x7f][^/\x00-\x1f\x7f]{0,63}")  # a plain folder/file name, as clients.name
_NAME_RULE = "1-64 printable characters, no '/', not starting with '.'"
_FINGERPRINT_LABEL = b"secure_fgrpo roster entry v2\0"


class KeyFileError(ValueError):
    """An identity, entry or roster file is missing, malformed, too open, or does not match."""


def check_name(name: str, where: str = "party name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KeyFileError(f"{where} {name!r} must be {_NAME_RULE}")
    return name


def _raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return _raw(key.public_key())


@dataclass(frozen=True)
class RosterEntry:
    """One party's public keys. ``sealing`` is None in a version-1 roster (signing keys only)."""

    name: str
    signing: bytes
    sealing: bytes | None = None

    @property
    def signing_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.signing)

    @property
    def sealing_key(self) -> X25519PublicKey:
        if self.sealing is None:
            raise KeyFileError(f"roster entry {self.name!r} has no X25519 key (made by an older version?)")
        return X25519PublicKey.from_public_bytes(self.sealing)

    def fingerprint(self) -> str:
        """SHA-256 over the name and both keys, in 4-hex-digit groups, to read aloud."""
        digest = hashlib.sha256(_FINGERPRINT_LABEL + self.name.encode() + b"\0" + self.signing
                                + (self.sealing or b"")).hexdigest()
        return " ".join(digest[i:i + 4] for i in range(0, len(digest), 4))

    def to_json(self) -> dict:
        doc = {"ed25519": self.signing.hex()}
        if self.sealing is not None:
            doc["x25519"] = self.sealing.hex()
        return doc

    @classmethod
    def from_json(cls, name: str, doc: object, where: str) -> RosterEntry:
        """Parse ``doc`` (a version-2 dict, or a version-1 hex string); ``where`` names the file."""
        check_name(name, f"{where}: party name")
        fields = {"ed25519": doc} if isinstance(doc, str) else doc
        if not isinstance(fields, dict) or "ed25519" not in fields or set(fields) - {"ed25519", "x25519"}:
            raise KeyFileError(f"{where}: entry {name!r} must be {{'ed25519': hex, 'x25519': hex}}")
        raw = {}
        for field, value in fields.items():
            try:
                raw[field] = bytes.fromhex(value)
            except (TypeError, ValueError):
                raise KeyFileError(f"{where}: entry {name!r} field {field} is not hex") from None
            if len(raw[field]) != PUBLIC_BYTES:
                raise KeyFileError(f"{where}: entry {name!r} field {field} must be a 32-byte key")
        return cls(name, raw["ed25519"], raw.get("x25519"))


@dataclass(frozen=True)
class Party:
    """A party's private keys, loaded from its own folder; never logged, never serialised here."""

    name: str
    signing: Ed25519PrivateKey
    sealing: X25519PrivateKey

    def entry(self) -> RosterEntry:
        return RosterEntry(self.name, public_bytes(self.signing), _raw(self.sealing.public_key()))


def identity_path(state_dir: Path) -> Path:
    return Path(state_dir) / SUBDIR / SIGNING_FILE


def sealing_path(state_dir: Path) -> Path:
    return Path(state_dir) / SUBDIR / SEALING_FILE


def entry_path(state_dir: Path) -> Path:
    return Path(state_dir) / SUBDIR / ENTRY_FILE


def _raw_private(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def create_party(state_dir: Path, name: str) -> Party:
    """Make NAME's two key pairs in ``state_dir`` (this machine only); refuse to overwrite."""
    check_name(name)
    for path in (identity_path(state_dir), sealing_path(state_dir), entry_path(state_dir)):
        if path.exists():
            raise KeyFileError(
                f"{path} already exists: {state_dir} holds an identity; keep it or choose another folder")
    if not Path(state_dir).exists():
        Path(state_dir).mkdir(parents=True, mode=0o700)  # a folder we create is private from the start
    party = Party(name, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
    write_private(identity_path(state_dir), _raw_private(party.signing))
    write_private(sealing_path(state_dir), _raw_private(party.sealing))
    write_entry(entry_path(state_dir), party.entry())
    log.info("created the identity of %s in %s", name, Path(state_dir) / SUBDIR)
    return party


def ensure_party(state_dir: Path, name: str) -> Party:
    """The party's keys, created on first use (the in-process simulation plays each party in
    turn); keys made without a name (``load_or_create_identity``) get their entry here."""
    if not entry_path(state_dir).exists():
        if not identity_path(state_dir).exists():
            return create_party(state_dir, check_name(name))
        signing = load_or_create_identity(state_dir)  # also makes a missing X25519 key
        write_entry(entry_path(state_dir), Party(check_name(name), signing, _load_sealing(state_dir)).entry())
    party = load_party(state_dir)
    if party.name != name:
        raise KeyFileError(f"{entry_path(state_dir)} belongs to {party.name!r}, not {name!r}")
    return party


def _read_private(path: Path) -> bytes:
    if not path.exists():
        raise KeyFileError(f"{path}: no identity key (run `secure-fgrpo keys init --party NAME --out FOLDER` first)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path}: key file has permissions {oct(mode)}; it must be 0600")
    raw = path.read_bytes()
    if len(raw) != 32:
        raise KeyFileError(f"{path}: key must be 32 raw bytes, got {len(raw)}")
    return raw


def load_identity(state_dir: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_read_private(identity_path(state_dir)))


def _load_sealing(state_dir: Path) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_read_private(sealing_path(state_dir)))


def load_or_create_identity(state_dir: Path) -> Ed25519PrivateKey:
    """The signing key, with both key pairs created on first use (the entry needs a name: see
    :func:`ensure_party`)."""
    if not identity_path(state_dir).exists():
        write_private(identity_path(state_dir), _raw_private(Ed25519PrivateKey.generate()))
    if not sealing_path(state_dir).exists():
        write_private(sealing_path(state_dir), _raw_private(X25519PrivateKey.generate()))
    return load_identity(state_dir)


def load_party(state_dir: Path) -> Party:
    """Both private keys and the name; refuses an entry file that does not match the keys."""
    signing = load_identity(state_dir)
    sealing = _load_sealing(state_dir)
    entry = read_entry(entry_path(state_dir))
    party = Party(entry.name, signing, sealing)
    if party.entry() != entry:
        raise KeyFileError(f"{entry_path(state_dir)} does not match the private keys beside it")
    return party


def write_entry(path: Path, entry: RosterEntry) -> None:
    """One party's public entry (public: only public keys)."""
    doc = {"version": ROSTER_VERSION, "name": entry.name, **entry.to_json()}
    write_private(Path(path), (json.dumps(doc, indent=1) + "\n").encode())


def read_entry(path: Path) -> RosterEntry:
    doc = _read_json(Path(path))
    if not isinstance(doc, dict) or doc.get("version") != ROSTER_VERSION or "name" not in doc:
        raise KeyFileError(f"{path}: not a roster entry (expected version {ROSTER_VERSION}, name, ed25519, x25519)")
    fields = {k: v for k, v in doc.items() if k not in ("version", "name")}
    return RosterEntry.from_json(doc["name"], fields, str(path))


def write_roster(path: Path, roster: Mapping[str, bytes | RosterEntry]) -> None:
    """Write atomically; the roster is public. Bare bytes are signing keys only."""
    entries = {n: e if isinstance(e, RosterEntry) else RosterEntry(n, e) for n, e in roster.items()}
    _check_unique(entries, str(path))
    doc = {"version": ROSTER_VERSION, "clients": {n: entries[n].to_json() for n in sorted(entries)}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def assemble_roster(out: Path, entry_files: Iterable[Path]) -> dict[str, RosterEntry]:
    """The roster from the parties' exported entries: the one way a roster is put together
    (``keys roster``, the loopback harness). One entry per name, never over an existing file,
    and what was written is read back through the loader every party uses."""
    entries: dict[str, RosterEntry] = {}
    for path in entry_files:
        entry = read_entry(Path(path))
        if entry.name in entries:
            raise KeyFileError(f"keys roster: {path} repeats the name {entry.name!r}")
        entries[entry.name] = entry
    if not entries:
        raise KeyFileError("keys roster: give at least one entry file")
    if Path(out).exists():
        raise KeyFileError(f"keys roster: {out} already exists; remove it yourself or choose another --out")
    write_roster(Path(out), entries)
    load_roster_entries(Path(out))
    return entries


def _read_json(path: Path) -> object:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        seen: dict = {}
        for key, value in pairs:
            if key in seen:
                raise KeyFileError(f"{path}: name {key!r} appears twice")
            seen[key] = value
        return seen

    try:
        return json.loads(path.read_text(), object_pairs_hook=no_duplicates)
    except FileNotFoundError:
        raise KeyFileError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KeyFileError(f"{path} is not JSON ({getattr(err, 'msg', 'not UTF-8')})") from None


def _check_unique(entries: Mapping[str, RosterEntry], where: str) -> None:
    owners: dict[bytes, str] = {}
    for name, entry in entries.items():
        for key in (entry.signing, entry.sealing):
            if key is None:
                continue
            if key in owners:
                raise KeyFileError(f"{where}: {name!r} and {owners[key]!r} have the same public key")
            owners[key] = name


def load_roster_entries(path: Path) -> dict[str, RosterEntry]:
    """Parse and validate a roster (version 1: signing keys only; version 2: both keys)."""
    path = Path(path)
    try:
        doc = _read_json(path)
    except KeyFileError as err:
        raise KeyFileError(f"secure_sum.options.roster: {err}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("version") not in (1, ROSTER_VERSION)
        or not isinstance(doc.get("clients"), dict)
    ):
        raise KeyFileError(
            f"secure_sum.options.roster: {path} must be {{'version': 2, 'clients': {{name: "
            "{'ed25519': hex, 'x25519': hex}}}}"
        )
    if not doc["clients"]:
        raise KeyFileError(f"secure_sum.options.roster: {path} names no party")
    where = f"secure_sum.options.roster: {path}"
    if doc["version"] == 1 and not all(isinstance(v, str) for v in doc["clients"].values()):
        raise KeyFileError(f"{where}: a version-1 roster maps each name to one hex key")
    entries = {n: RosterEntry.from_json(n, v, where) for n, v in doc["clients"].items()}
    _check_unique(entries, where)
    return entries


def load_roster(path: Path) -> dict[str, Ed25519PublicKey]:
    """The signing keys of a roster (what the secure-sum protocols verify)."""
    return {n: e.signing_key for n, e in load_roster_entries(path).items()}


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
