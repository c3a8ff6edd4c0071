"""A scanner for private-key bytes in files the commands wrote (tests play every party).

A private key counts as present in a file when its 32 raw bytes appear raw, in hex, or in
base64, or when the file holds a PEM/OpenSSH private key that decodes to the same key
(OpenSSH encodings carry random check words, so their bytes differ on every export)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from secure_fgrpo.secure_sum.identity import identity_path, sealing_path

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S)


def party_secrets(name: str, state_dir: Path) -> dict[str, bytes]:
    """``{label: raw private bytes}`` of one party's two keys, read from its own folder."""
    return {f"{name}/ed25519": identity_path(state_dir).read_bytes(),
            f"{name}/x25519": sealing_path(state_dir).read_bytes()}


def private_value(key: object) -> bytes | None:
    """The secret bytes of a private key: raw for Ed25519/X25519, the scalar for ECDSA."""
    if isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    if isinstance(key, EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
    return None


def pem_secret(path: Path) -> bytes:
    """The secret of a PEM (PKCS8) or OpenSSH private-key file."""
    found = _pem_privates(Path(path).read_bytes())
    assert len(found) == 1, path
    return found[0]


def _pem_privates(data: bytes) -> list[bytes]:
    out = []
    for match in PEM_BLOCK.finditer(data):
        block = match.group(0)
        try:
            key = (serialization.load_ssh_private_key(block, None) if b"OPENSSH" in match.group(1)
                   else serialization.load_pem_private_key(block, None))
        except (ValueError, TypeError):
            continue
        value = private_value(key)
        if value is not None:
            out.append(value)
    return out


def forms(secret: bytes) -> dict[str, bytes]:
    return {"raw": secret, "hex": secret.hex().encode(), "HEX": secret.hex().upper().encode(),
            "base64": base64.b64encode(secret).rstrip(b"="),
            "base64url": base64.urlsafe_b64encode(secret).rstrip(b"=")}


def find(secret: bytes, data: bytes) -> str | None:
    """The encoding in which ``secret`` appears in ``data``, or None."""
    for form, needle in forms(secret).items():
        if needle in data:
            return form
    return "PEM/OpenSSH" if secret in _pem_privates(data) else None


def scan(files: list[Path], secrets: dict[str, bytes]) -> list[tuple[str, str, str]]:
    """Every (file, secret label, form) where a secret appears."""
    hits = []
    for path in files:
        data = path.read_bytes()
        for label, secret in secrets.items():
            form = find(secret, data)
            if form:
                hits.append((str(path), label, form))
    return hits


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in Path(root).rglob("*") if p.is_file())


def deployment_owners(fed: object) -> dict[Path, dict[str, bytes]]:
    """``{folder: {label: secret}}`` of a loopback deployment: the coordinator's CA and SuperLink
    keys, and each institution's two identity keys and its SuperNode key."""
    root = fed.root  # type: ignore[attr-defined]
    owners = {root / "coordinator": {f"coordinator/{k.name}": pem_secret(k)
                                     for k in (root / "coordinator" / "certs").glob("*.key")}}
    for name in fed.names:  # type: ignore[attr-defined]
        node = fed.node_dir(name)  # type: ignore[attr-defined]
        owners[node] = {**party_secrets(name, fed.state_dir(name)),  # type: ignore[attr-defined]
                        f"{name}/node-key": pem_secret(fed.keys[name].private)}  # type: ignore[attr-defined]
    return owners


def assert_custody(owners: dict[Path, dict[str, bytes]], public: list[Path], everything: list[Path]) -> None:
    """Each owner's folder holds all of its own secrets and no other party's; the public folders
    hold none; and no file lies outside these folders."""
    every = {label: secret for secrets in owners.values() for label, secret in secrets.items()}
    assert len(set(every.values())) == len(every)
    for folder, secrets in owners.items():
        found = {label for _, label, _ in scan(files_under(folder), every)}
        assert found == set(secrets), (folder, found)  # own keys only, and all of them (teeth)
    shared = files_under(*public)
    assert shared and scan(shared, every) == []
    assert sorted(shared + files_under(*owners)) == sorted(everything)
