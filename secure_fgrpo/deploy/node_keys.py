"""SuperNode authentication keys: ECDSA P-384 in OpenSSH format, as Flower expects.

The coordinator registers each institution's public key with ``flwr supernode register``;
the SuperLink then refuses any SuperNode whose key it does not know. The private key stays at
the institution (0600). One key per SuperNode; the file names carry the node's name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..fileio import write_private

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class NodeKeyPaths:
    private: Path
    public: Path


def make_node_key(out: Path, name: str) -> NodeKeyPaths:
    """Write ``NAME`` (private, 0600) and ``NAME.pub`` (public) under ``out``; never overwrite."""
    if not _NAME.match(name):
        raise ValueError(f"deploy node-key: --name {name!r} must be 1-64 letters, digits, '_', '.', '-'")
    out = Path(out)
    paths = NodeKeyPaths(out / name, out / f"{name}.pub")
    for p in (paths.private, paths.public):
        if p.exists():
            raise ValueError(f"deploy node-key: {p} already exists; choose another --name or --out")
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    write_private(paths.private, private)
    paths.public.write_bytes(public + f" {name}\n".encode())
    log.info("wrote SuperNode key %s (+ .pub)", paths.private)
    return paths
