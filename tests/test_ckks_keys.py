"""Key custody: secret context only in client folders (0600), server context public."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import tenseal as ts
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from secure_fgrpo.secure_sum import make_backend
from secure_fgrpo.secure_sum.ckks import client_dir, open_for_institution, seal_for_institution, server_dir
from secure_fgrpo.secure_sum.ckks.keys import (
    PUBLIC_FILE,
    SECRET_FILE,
    SUBDIR,
    KeyMaterialError,
    init_keys,
    load_keys,
)
from secure_fgrpo.secure_sum.ckks.params import BFV_4096, CKKS_4096


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_setup_writes_0600_files_and_a_public_server_context(tmp_path: Path) -> None:
    names = ["a", "b"]
    make_backend("ckks", {}).setup(tmp_path, names)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "roster.json"]
    # contexts + metas; each client's Ed25519 + X25519 keys and public entry; b's sealed envelope
    assert len(files) == 2 * 2 + 2 + 2 * 3 + 1
    assert all(_mode(p) == 0o600 for p in files), {str(p): oct(_mode(p)) for p in files}
    assert (server_dir(tmp_path) / SUBDIR / "roster.json").exists()  # public keys only
    assert all(_mode(p) == 0o700 for p in tmp_path.rglob("ckks"))
    server = ts.context_from((server_dir(tmp_path) / SUBDIR / PUBLIC_FILE).read_bytes())
    assert not server.is_private()
    assert not server.has_galois_keys() and not server.has_relin_keys()
    for n in names:
        ctx = ts.context_from((client_dir(tmp_path, n) / SUBDIR / SECRET_FILE).read_bytes())
        assert ctx.is_private()
    assert not (server_dir(tmp_path) / SUBDIR / SECRET_FILE).exists()


def test_server_gets_relin_keys_only_when_it_evaluates_weights(tmp_path: Path) -> None:
    make_backend("ckks", {"weights": "server", "tau": 1.0, "gain_clip": 2.0, "poly_degree": 3,
                          "reveal": "server-blind"}).setup(tmp_path, ["a"])
    server = ts.context_from((server_dir(tmp_path) / SUBDIR / PUBLIC_FILE).read_bytes())
    assert server.has_relin_keys() and not server.has_galois_keys() and not server.is_private()


def test_setup_reuses_matching_keys_and_refuses_others(tmp_path: Path) -> None:
    kid = init_keys(tmp_path, ["a", "b"], BFV_4096, relin=False)
    before = (client_dir(tmp_path, "a") / SUBDIR / SECRET_FILE).read_bytes()
    assert init_keys(tmp_path, ["a", "b"], BFV_4096, relin=False) == kid
    assert (client_dir(tmp_path, "a") / SUBDIR / SECRET_FILE).read_bytes() == before
    with pytest.raises(KeyMaterialError, match="use params 'bfv-4096'"):
        init_keys(tmp_path, ["a", "b"], CKKS_4096, relin=False)
    with pytest.raises(KeyMaterialError, match="lack clients c"):
        init_keys(tmp_path, ["a", "b", "c"], BFV_4096, relin=False)


def test_load_refuses_a_world_readable_secret_and_a_mismatched_role(tmp_path: Path) -> None:
    init_keys(tmp_path, ["a"], BFV_4096, relin=False)
    secret = client_dir(tmp_path, "a") / SUBDIR / SECRET_FILE
    assert load_keys(client_dir(tmp_path, "a"), BFV_4096, secret=True, relin=False).secret_key is not None
    os.chmod(secret, 0o644)
    with pytest.raises(KeyMaterialError, match="not 0600"):
        load_keys(client_dir(tmp_path, "a"), BFV_4096, secret=True, relin=False)
    with pytest.raises(KeyMaterialError, match="no ckks keys"):
        load_keys(tmp_path / "nowhere", BFV_4096, secret=False, relin=False)
    with pytest.raises(KeyMaterialError, match="configured 'ckks-4096'"):
        load_keys(server_dir(tmp_path), CKKS_4096, secret=False, relin=False)


def test_sealed_secret_context_opens_only_for_its_institution(tmp_path: Path) -> None:
    init_keys(tmp_path, ["a"], BFV_4096, relin=False)
    secret = (client_dir(tmp_path, "a") / SUBDIR / SECRET_FILE).read_bytes()
    inst, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    blob = seal_for_institution(secret, inst.public_key())
    assert secret[64:128] not in blob  # the sealed blob does not carry the context in clear
    assert open_for_institution(blob, inst) == secret
    with pytest.raises(ValueError, match="failed authentication"):
        open_for_institution(blob, other)
    tampered = bytearray(blob)
    tampered[-5] ^= 1
    with pytest.raises(ValueError, match="failed authentication"):
        open_for_institution(bytes(tampered), inst)
    with pytest.raises(ValueError, match="not a sealed"):
        open_for_institution(b"junk", inst)
