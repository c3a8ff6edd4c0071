"""Payload checks (archive integrity, masked uniformity, CKKS ciphertexts of the public context)
and the key-material scan, each shown to fail on a planted defect."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from secure_fgrpo.audit.checks import (
    check_archive,
    check_ckks,
    check_masked_uniform,
    masked_words,
    parse_masked_layout,
    uniformity_pvalue,
)
from secure_fgrpo.audit.keyscan import KnownSecret, scan_key_material
from secure_fgrpo.audit.simulate import simulate_federation
from secure_fgrpo.audit.view import load_view
from secure_fgrpo.secure_sum.ckks.sealio import SealIO
from secure_fgrpo.secure_sum.masked.messages import MaskedInput


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("masked")
    simulate_federation(out, "masked", {}, clients=4, rounds=2, dim=2049)
    return out


@pytest.fixture(scope="module")
def ckks_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckks")
    simulate_federation(out, "ckks", {}, clients=3, rounds=1, dim=513)
    return out


def _copy(run: Path, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(run, dst)
    return dst


# ----------------------------------------------------------------------------- uniformity
def test_uniform_words_pass_and_structured_words_fail() -> None:
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype("<u4").tobytes()
    p, lanes = uniformity_pvalue(uniform, 4)
    assert p > 1e-3 and len(lanes) == 4
    # An unmasked fixed-point vector: small signed integers, high bytes 0x00 or 0xFF.
    fixed = np.rint(rng.normal(0, 2**20, 20000)).astype("<i4").tobytes()
    assert uniformity_pvalue(fixed, 4)[0] < 1e-12
    # A weak mask (only the low 16 bits random) is caught on the high lanes.
    weak = ((rng.integers(0, 2**16, 20000) + (np.arange(20000) % 7 << 16)).astype("<u4")).tobytes()
    p_weak, lanes_weak = uniformity_pvalue(weak, 4)
    assert p_weak < 1e-12 and lanes_weak[0] > 1e-4
    # Few words: the test falls back to 16 bins on the high nibble and still works.
    assert uniformity_pvalue(fixed[:400], 4)[0] < 1e-6
    with pytest.raises(ValueError, match="whole number"):
        uniformity_pvalue(b"\x00" * 7, 4)


def test_documented_layout_matches_the_masked_decoder() -> None:
    words = os.urandom(4 * 300)
    payload = MaskedInput(words).to_bytes()
    assert bytes(parse_masked_layout(payload)) == words == bytes(masked_words(payload))
    with pytest.raises(ValueError, match="length field"):
        parse_masked_layout(payload[:-1])
    with_complaint = MaskedInput(words, (("client-001", b"k" * 32),)).to_bytes()
    assert bytes(parse_masked_layout(with_complaint)) == words == bytes(masked_words(with_complaint))


def test_masked_run_is_uniform(masked_run: Path) -> None:
    res = check_masked_uniform(load_view(masked_run))
    assert res.status == "pass" and len(res.details) == 8 and all(d["ok"] for d in res.details)


def test_unmasked_vector_in_a_masked_run_fails(masked_run: Path, tmp_path: Path) -> None:
    run = _copy(masked_run, tmp_path)
    view = load_view(run)
    target = next(e for e in view.entries if e.kind == "masked")
    plain = np.rint(np.random.default_rng(1).normal(0, 1000, 2049)).astype("<i4").tobytes()
    _replace_payload(run, target, MaskedInput(plain).to_bytes())
    res = check_masked_uniform(load_view(run))
    assert res.status == "fail"
    assert [d["sender"] for d in res.details if not d["ok"]] == [target.sender]


def _replace_payload(run: Path, entry, payload: bytes) -> None:
    """Swap an archived payload and its transcript digest together (a consistent forgery)."""
    import hashlib
    import json

    path = run / "server" / "inbox" / f"round-{entry.round}" / f"{entry.sender}-{entry.stage}.bin"
    os.chmod(path, 0o600)
    path.write_bytes(payload)
    t = run / "server" / "transcript.jsonl"
    rows = [json.loads(x) for x in t.read_text().splitlines()]
    for r in rows:
        if r["digest"] == entry.digest:
            r["digest"], r["size"] = hashlib.sha256(payload).hexdigest(), len(payload)
    t.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ----------------------------------------------------------------------------- archive
def test_archive_check_catches_tampering_and_absence(masked_run: Path, tmp_path: Path) -> None:
    assert check_archive(load_view(masked_run)).status == "pass"
    run = _copy(masked_run, tmp_path)
    victim = next((run / "server" / "inbox" / "round-1").glob("*masked_input.bin"))
    os.chmod(victim, 0o600)
    raw = victim.read_bytes()
    victim.write_bytes(raw[:20] + bytes([raw[20] ^ 1]) + raw[21:])  # one masked word changed
    res = check_archive(load_view(run))
    assert res.status == "fail" and "differ" in res.summary
    shutil.rmtree(run / "server" / "inbox")
    assert check_archive(load_view(run)).status == "skipped"


# ----------------------------------------------------------------------------- ckks
def test_ckks_inputs_are_ciphertexts_of_the_public_context(ckks_run: Path) -> None:
    res = check_ckks(load_view(ckks_run))
    assert res.status == "pass" and "no secret key" in res.summary
    assert sum(1 for d in res.details if "round" in d) == 3


def test_ckks_check_rejects_a_foreign_ciphertext_and_a_private_server_context(ckks_run: Path, tmp_path: Path) -> None:
    from secure_fgrpo.secure_sum.ckks.wire import decode_bundle, encode_bundle

    run = _copy(ckks_run, tmp_path)
    view = load_view(run)
    entry = next(e for e in view.entries if e.kind == "ciphertexts")
    bundle = decode_bundle(view.payload(entry))
    # The same framing around a ciphertext of another context (other parameters): SEAL refuses it.
    other = ts.context(ts.SCHEME_TYPE.BFV, 8192, 1032193, [60, 60], encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC)
    import tenseal.sealapi as seal

    pt = seal.Plaintext()
    seal.BatchEncoder(other.data.seal_context()).encode([1] * 8192, pt)
    foreign = SealIO().dump(seal.Encryptor(other.data.seal_context(), other.data.secret_key()).encrypt_symmetric(pt))
    forged = type(bundle)(bundle.kind, bundle.scheme, bundle.key_id, bundle.round, bundle.dim, (foreign,), None, ())
    _replace_payload(run, entry, encode_bundle(forged))
    res = check_ckks(load_view(run))
    assert res.status == "fail" and [d["sender"] for d in res.details if d.get("ok") is False] == [entry.sender]
    # A server context that holds the secret key fails the check outright.
    secret = next((run / "clients").glob("*/keys/ckks/secret_context.bin")).read_bytes()
    pub = run / "server" / "keys" / "ckks" / "public_context.bin"
    os.chmod(pub, 0o600)
    pub.write_bytes(secret)
    res = check_ckks(load_view(run))
    assert res.status == "fail" and "A SECRET KEY" in res.summary


# ----------------------------------------------------------------------------- key material
def _client_secrets(run: Path) -> list[KnownSecret]:
    """Ground truth for the test only: the auditor itself never opens clients/."""
    secrets = []
    for p in sorted((run / "clients").glob("*/keys/*/*")):
        if p.name.endswith((".key", "secret_context.bin")):
            secrets.append(KnownSecret(p.parent.parent.parent.name + "/" + p.name, p.read_bytes()))
            if p.name == "secret_context.bin":
                ctx = ts.context_from(p.read_bytes(), n_threads=1)
                secrets.append(KnownSecret("secret key", SealIO().dump(ctx.data.secret_key())))  # both forms
    return secrets


@pytest.mark.parametrize("which", ["masked_run", "ckks_run"])
def test_clean_server_folder_holds_no_client_secret(which: str, request) -> None:
    run = request.getfixturevalue(which)
    secrets = _client_secrets(run)
    assert secrets
    res = scan_key_material(run / "server", secrets)
    assert res.status == "pass", res.details


def test_planted_key_material_is_found(masked_run: Path, ckks_run: Path, tmp_path: Path) -> None:
    run = _copy(masked_run, tmp_path)
    identity = next((run / "clients").glob("*/keys/identity/ed25519.key"))
    secrets = _client_secrets(run)
    (run / "server" / "debug.log").write_text(f"peer key {identity.read_bytes().hex()}\n")
    res = scan_key_material(run / "server", secrets)
    assert res.status == "fail" and res.details[0]["file"].endswith("debug.log") and "hex" in res.details[0]["evidence"]
    # Without the known secrets, a PEM private key is still recognised by its header.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    (run / "server" / "debug.log").unlink()
    (run / "server" / "backup.pem").write_bytes(pem)
    res = scan_key_material(run / "server")
    assert res.status == "fail" and "PEM" in res.details[0]["evidence"]
    # A client's secret CKKS context copied into the server's folder, found both ways.
    ck = _copy(ckks_run, tmp_path / "c")
    src = next((ck / "clients").glob("*/keys/ckks/secret_context.bin"))
    shutil.copy(src, ck / "server" / "keys" / "ckks" / "context_backup.bin")
    res = scan_key_material(ck / "server", _client_secrets(ck))
    evidence = {d["evidence"] for d in res.details}
    assert res.status == "fail" and "a TenSEAL context holding a secret key" in evidence
    assert any(e.startswith("bytes of the known secret") for e in evidence)
