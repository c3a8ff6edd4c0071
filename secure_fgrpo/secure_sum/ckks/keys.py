"""Key custody: who holds which part of the encryption context.

- Every institution holds the *secret* context (one shared secret key: any holder can decrypt
  any ciphertext; see SECURITY.md for what that means under collusion).
- The server holds a *public* context: parameters, plus relinearisation keys only when it
  evaluates the weight polynomial. It never gets the secret key, and never galois keys (no
  operation here rotates).

Layout under a run directory (the federation passes these folders as ``state_dir``)::

    server/keys/ckks/{public_context.bin, meta.json, sealed/<name>.json}
    clients/<name>/keys/ckks/{secret_context.bin, meta.json}

Every file is written 0600 in 0700 folders. One institution makes the secret context and seals
it to each other institution's X25519 public key from the roster (ephemeral ECDH ->
HKDF-SHA256 -> AES-256-GCM), in an envelope signed with its Ed25519 identity, so it can pass
the server: the server sees only sealed envelopes and the public context.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping
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
from ..identity import RosterEntry, ensure_party, load_party, verify
from .params import PRESETS, ParamSet
from .wire import KEY_ID_BYTES

log = logging.getLogger(__name__)

SUBDIR = "ckks"
SECRET_FILE = "secret_context.bin"
PUBLIC_FILE = "public_context.bin"
META_FILE = "meta.json"
_SEALED_MAGIC = b"SFKW1"
SEALED_DIR = "sealed"
_HKDF_INFO = b"secure_fgrpo ckks secret context v1"
_ENVELOPE_LABEL = b"secure_fgrpo ckks sealed secret v1\0"


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


def make_context(params: ParamSet, relin: bool) -> tuple[bytes, bytes, bytes]:
    """(secret context, public context, key id): made once, by one institution.

    The key id is 16 random bytes naming this key, not derived from it."""
    ctx = build_context(params)
    secret = ctx.serialize(save_public_key=False, save_secret_key=True, save_galois_keys=False,
                           save_relin_keys=False)
    public = ctx.serialize(save_public_key=False, save_secret_key=False, save_galois_keys=False,
                           save_relin_keys=relin)
    return secret, public, os.urandom(KEY_ID_BYTES)


def install_secret(state_dir: Path, secret: bytes, key_id: bytes, params: ParamSet, relin: bool) -> None:
    """Write a secret context into its holder's own folder (0600 in 0700)."""
    folder = Path(state_dir) / SUBDIR
    write_private(folder / SECRET_FILE, secret)
    write_private(folder / META_FILE, _meta(key_id, params, relin, "client"))


def install_public(folder: Path, public: bytes, key_id: bytes, params: ParamSet, relin: bool) -> None:
    """The server's public context (no secret key) and its meta, into ``folder``."""
    write_private(Path(folder) / PUBLIC_FILE, public)
    write_private(Path(folder) / META_FILE, _meta(key_id, params, relin, "server"))


def init_keys(run_dir: Path, clients: list[str], params: ParamSet, relin: bool) -> bytes:
    """In-process set-up, played party by party as a deployment would run it: each client makes
    its own identity in its own folder; the first client makes the context and seals it to the
    others' X25519 keys into ``server/keys/ckks/sealed/`` (what passes the server); each other
    client opens its own envelope into its own folder. Reuses matching keys (resume).

    Returns the key id."""
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
    roster = {n: ensure_party(client_dir(run_dir, n), n).entry() for n in clients}
    maker, *others = sorted(clients)
    key_id = seal_secret(client_dir(run_dir, maker), roster, params, relin, sdir)
    for name in others:
        open_sealed(client_dir(run_dir, name), roster, sdir / SEALED_DIR / f"{name}.json", params)
    log.info("ckks keys created: params=%s, %d clients, made by %s, sealed to the others", params.name,
             len(clients), maker)
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
def seal_for_institution(secret_context: bytes, recipient: X25519PublicKey, aad: bytes = b"") -> bytes:
    """Encrypt a secret context to one institution: only its X25519 private key opens it.
    ``aad`` (authenticated, not encrypted) binds the blob to its envelope's header."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    rcp_pub = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _kdf(eph.exchange(recipient), eph_pub + rcp_pub)
    nonce = os.urandom(12)
    header = _SEALED_MAGIC + eph_pub + nonce
    return header + AESGCM(key).encrypt(nonce, secret_context, header + aad)


def open_for_institution(blob: bytes, private_key: X25519PrivateKey, aad: bytes = b"") -> bytes:
    """Inverse of :func:`seal_for_institution`; raises ValueError if tampered or not ours."""
    n = len(_SEALED_MAGIC)
    if len(blob) < n + 32 + 12 + 16 or blob[:n] != _SEALED_MAGIC:
        raise ValueError("not a sealed secure_fgrpo secret context")
    eph_pub, nonce = blob[n:n + 32], blob[n + 32:n + 44]
    rcp_pub = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _kdf(private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub)), eph_pub + rcp_pub)
    try:
        return AESGCM(key).decrypt(nonce, blob[n + 44:], blob[:n + 44] + aad)
    except Exception:  # cryptography raises InvalidTag
        raise ValueError("sealed secret context failed authentication (wrong key or tampered)") from None


def _kdf(shared: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(shared)


def _header(sender: str, recipient: str, key_id: bytes, params: ParamSet, relin: bool) -> bytes:
    return json.dumps({"from": sender, "to": recipient, "key_id": key_id.hex(), "params": params.name,
                       "relin": relin}, sort_keys=True, separators=(",", ":")).encode()


def seal_secret(maker_dir: Path, roster: Mapping[str, RosterEntry], params: ParamSet, relin: bool,
                out_dir: Path) -> bytes:
    """The maker's side: make (or reuse) the secret context in its own folder, write the server's
    public context and one signed, sealed envelope per other roster party into ``out_dir``.
    Nothing written to ``out_dir`` holds a secret in clear. Returns the key id."""
    maker = load_party(maker_dir)
    if roster.get(maker.name) != maker.entry():
        raise KeyMaterialError(f"the roster's entry for {maker.name!r} does not match the keys in {maker_dir}")
    folder = Path(maker_dir) / SUBDIR
    if (folder / SECRET_FILE).exists():
        mine = load_keys(maker_dir, params, secret=True, relin=False)
        secret, key_id = (folder / SECRET_FILE).read_bytes(), mine.key_id
        public = mine.context.serialize(save_public_key=False, save_secret_key=False,
                                        save_galois_keys=False, save_relin_keys=relin)
    else:
        secret, public, key_id = make_context(params, relin)
        install_secret(maker_dir, secret, key_id, params, relin)
    install_public(out_dir, public, key_id, params, relin)
    for name in sorted(set(roster) - {maker.name}):
        header = _header(maker.name, name, key_id, params, relin)
        sealed = seal_for_institution(secret, roster[name].sealing_key, header)
        doc = {**json.loads(header), "sealed": base64.b64encode(sealed).decode(),
               "signature": base64.b64encode(maker.signing.sign(_ENVELOPE_LABEL + header + sealed)).decode()}
        write_private(Path(out_dir) / SEALED_DIR / f"{name}.json", (json.dumps(doc, indent=1) + "\n").encode())
    log.info("ckks secret made by %s and sealed to %d parties", maker.name, len(roster) - 1)
    return key_id


def open_sealed(state_dir: Path, roster: Mapping[str, RosterEntry], envelope: Path,
                params: ParamSet | None = None) -> bytes:
    """A recipient's side: check the envelope is for us and signed by a roster party, open it
    with our X25519 key and install the secret context in our own folder. ``params``: the
    expected parameter set (default: the preset the envelope names). Returns the key id."""
    party, where = load_party(state_dir), str(envelope)
    try:
        doc = json.loads(Path(envelope).read_text())
        sender, recipient, key_id = doc["from"], doc["to"], bytes.fromhex(doc["key_id"])
        params, relin = params or PRESETS[doc["params"]], doc["relin"]
        sealed = base64.b64decode(doc["sealed"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
    except FileNotFoundError:
        raise KeyMaterialError(f"{where} does not exist") from None
    except (ValueError, KeyError, TypeError) as err:
        raise KeyMaterialError(f"{where}: not a sealed-key envelope ({err.__class__.__name__})") from None
    if recipient != party.name:
        raise KeyMaterialError(f"{where} is addressed to {recipient!r}, not to {party.name!r}")
    if doc["params"] != params.name:
        raise KeyMaterialError(f"{where} carries a {doc['params']!r} context, expected {params.name!r}")
    if roster.get(party.name) != party.entry():
        raise KeyMaterialError(f"the roster's entry for {party.name!r} does not match the keys in {state_dir}")
    if sender not in roster or sender == party.name:
        raise KeyMaterialError(f"{where} comes from {sender!r}, who is not another party of the roster")
    header = _header(sender, recipient, key_id, params, bool(relin))
    if not verify(roster[sender].signing_key, signature, _ENVELOPE_LABEL + header + sealed):
        raise KeyMaterialError(f"{where} is not signed by {sender!r}'s roster key")
    try:
        secret = open_for_institution(sealed, party.sealing, header)
    except ValueError as err:
        raise KeyMaterialError(f"{where}: {err}") from None
    try:
        private = ts.context_from(secret, n_threads=1).is_private()
    except Exception:
        private = False
    if not private:
        raise KeyMaterialError(f"{where} holds no secret TenSEAL context")
    existing = Path(state_dir) / SUBDIR / SECRET_FILE
    if existing.exists() and existing.read_bytes() != secret:
        raise KeyMaterialError(f"{existing} already holds another secret context; move it away first")
    install_secret(state_dir, secret, key_id, params, bool(relin))
    return key_id
