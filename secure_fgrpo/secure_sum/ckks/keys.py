"""Key custody: who holds which part of the encryption context.

- Every institution holds the *secret* context (one shared secret key: any holder can decrypt
  any ciphertext; see SECURITY.md for what that means under collusion).
- The server holds a *public* context: parameters, plus relinearisation keys only when it
  evaluates the weight polynomial. It never gets the secret key, and never galois keys (no
  operation here rotates).

Layout under a run directory (the federation passes these folders as ``state_dir``)::

    server/keys/ckks/{public_context.bin, meta.json}
    clients/<name>/keys/ckks/{secret_context.bin, meta.json}

Every file is written 0600 in 0700 folders. For a real deployment the secret context is sealed
to each institution's X25519 public key (ephemeral ECDH -> HKDF-SHA256 -> AES-256-GCM).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tenseal as ts
import tenseal.sealapi as seal
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...fileio import write_private
from ..base import client_state_dir, server_state_dir
from .params import ParamSet
from .wire import KEY_ID_BYTES

log = logging.getLogger(__name__)

SUBDIR = "ckks"
SECRET_FILE = "secret_context.bin"
PUBLIC_FILE = "public_context.bin"
META_FILE = "meta.json"
_SEALED_MAGIC = b"SFKW1"
_HKDF_INFO = b"secure_fgrpo ckks secret context v1"


class KeyMaterialError(ValueError):
    """Key material is missing, inconsistent with the configured parameters, or not ours."""


@dataclass(frozen=True)
class KeyMaterial:
    """A loaded context. ``secret_key``/``relin_keys`` are None where this party has none."""

    context: ts.Context
    key_id: bytes
    params_name: str
    relin: bool

    @property
    def seal_context(self) -> Any:
        return self.context.data.seal_context()

    @property
    def secret_key(self) -> Any:
        return self.context.data.secret_key() if self.context.is_private() else None

    @property
    def relin_keys(self) -> Any:
        return self.context.data.relin_keys() if self.relin else None


def server_dir(run_dir: Path) -> Path:
    return server_state_dir(run_dir)


def client_dir(run_dir: Path, name: str) -> Path:
    return client_state_dir(run_dir, name)


def plain_modulus(params: ParamSet) -> int:
    """BFV batching prime (≡ 1 mod 2N); CKKS has none."""
    if params.scheme != "bfv":
        return -1
    return seal.PlainModulus.Batching(params.poly_modulus_degree, params.plain_modulus_bits).value()


def build_context(params: ParamSet) -> ts.Context:
    """A fresh secret context for symmetric encryption (no public key is ever needed)."""
    scheme = ts.SCHEME_TYPE.BFV if params.scheme == "bfv" else ts.SCHEME_TYPE.CKKS
    ctx = ts.context(scheme, params.poly_modulus_degree, plain_modulus(params),
                     list(params.coeff_mod_bit_sizes), encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
                     n_threads=1)
    if params.scheme == "ckks":
        ctx.global_scale = 2.0 ** params.scale_bits
    return ctx


def _meta(key_id: bytes, params: ParamSet, relin: bool, role: str) -> bytes:
    return json.dumps({"key_id": key_id.hex(), "params": params.describe(), "relin": relin,
                       "role": role}, indent=1).encode()


def init_keys(run_dir: Path, clients: list[str], params: ParamSet, relin: bool) -> bytes:
    """Create the federation's context once; reuse it when it already matches (resume).

    Returns the key id (16 random bytes naming this key, not derived from it)."""
    sdir = server_dir(run_dir) / SUBDIR
    if (sdir / META_FILE).exists():
        meta = json.loads((sdir / META_FILE).read_text())
        if meta["params"]["name"] != params.name or meta["relin"] != relin:
            raise KeyMaterialError(f"existing keys in {sdir} use params {meta['params']['name']!r} "
                                   f"(relin={meta['relin']}); configured {params.name!r} (relin={relin}): "
                                   "start a new run directory")
        missing = [c for c in clients if not (client_dir(run_dir, c) / SUBDIR / SECRET_FILE).exists()]
        if missing:
            raise KeyMaterialError(f"existing federation keys lack clients {', '.join(missing)}: "
                                   "start a new run directory")
        return bytes.fromhex(meta["key_id"])
    key_id = os.urandom(KEY_ID_BYTES)
    ctx = build_context(params)
    secret = ctx.serialize(save_public_key=False, save_secret_key=True, save_galois_keys=False,
                           save_relin_keys=False)
    public = ctx.serialize(save_public_key=False, save_secret_key=False, save_galois_keys=False,
                           save_relin_keys=relin)
    for name in clients:
        cdir = client_dir(run_dir, name) / SUBDIR
        write_private(cdir / SECRET_FILE, secret)
        write_private(cdir / META_FILE, _meta(key_id, params, relin, "client"))
    write_private(sdir / PUBLIC_FILE, public)
    write_private(sdir / META_FILE, _meta(key_id, params, relin, "server"))
    log.info("ckks keys created: params=%s, %d clients, server context %d bytes", params.name,
             len(clients), len(public))
    return key_id


def load_keys(state_dir: Path, params: ParamSet, *, secret: bool, relin: bool) -> KeyMaterial:
    """Load this party's context from its own folder and check it matches the configuration."""
    folder = Path(state_dir) / SUBDIR
    meta_path, ctx_path = folder / META_FILE, folder / (SECRET_FILE if secret else PUBLIC_FILE)
    if not meta_path.exists() or not ctx_path.exists():
        raise KeyMaterialError(f"no ckks keys in {folder}: run the key set-up (Backend.setup / keys init) first")
    meta = json.loads(meta_path.read_text())
    if meta["params"]["name"] != params.name:
        raise KeyMaterialError(f"keys in {folder} use params {meta['params']['name']!r}, configured {params.name!r}")
    if secret and os.stat(ctx_path).st_mode & 0o077:
        raise KeyMaterialError(f"{ctx_path} is readable by others: refusing a secret context not 0600")
    ctx = ts.context_from(ctx_path.read_bytes(), n_threads=1)
    if ctx.is_private() != secret:
        raise KeyMaterialError(f"{ctx_path}: expected a {'secret' if secret else 'public'} context")
    if relin and not meta["relin"]:
        raise KeyMaterialError(f"keys in {folder} have no relinearisation keys; weights = 'server' needs them")
    return KeyMaterial(ctx, bytes.fromhex(meta["key_id"]), params.name, relin and not secret)


# ----------------------------------------------------------------------------- deployment
def seal_for_institution(secret_context: bytes, recipient: X25519PublicKey) -> bytes:
    """Encrypt a secret context to one institution: only its X25519 private key opens it."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    rcp_pub = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _kdf(eph.exchange(recipient), eph_pub + rcp_pub)
    nonce = os.urandom(12)
    header = _SEALED_MAGIC + eph_pub + nonce
    return header + AESGCM(key).encrypt(nonce, secret_context, header)


def open_for_institution(blob: bytes, private_key: X25519PrivateKey) -> bytes:
    """Inverse of :func:`seal_for_institution`; raises ValueError if tampered or not ours."""
    n = len(_SEALED_MAGIC)
    if len(blob) < n + 32 + 12 + 16 or blob[:n] != _SEALED_MAGIC:
        raise ValueError("not a sealed secure_fgrpo secret context")
    eph_pub, nonce = blob[n:n + 32], blob[n + 32:n + 44]
    rcp_pub = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _kdf(private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub)), eph_pub + rcp_pub)
    try:
        return AESGCM(key).decrypt(nonce, blob[n + 44:], blob[:n + 44])
    except Exception:  # cryptography raises InvalidTag
        raise ValueError("sealed secret context failed authentication (wrong key or tampered)") from None


def _kdf(shared: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(shared)
