"""Keys per party (issue 12 item 3): `keys init` for one party at a time, a roster of public
entries with fingerprints, and the CKKS secret sealed from one institution to the others.
No file any command writes holds another party's private key; the files that pass the server
(roster, sealed envelopes, public context) hold no secret at all."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from keys_support import files_under, find, party_secrets, scan

from secure_fgrpo.audit.keyscan import KnownSecret, scan_key_material
from secure_fgrpo.cli import main
from secure_fgrpo.secure_sum.ckks.keys import (
    SECRET_FILE,
    SUBDIR,
    KeyMaterialError,
    _header,
    open_for_institution,
    open_sealed,
    seal_for_institution,
)
from secure_fgrpo.secure_sum.ckks.params import BFV_4096
from secure_fgrpo.secure_sum.identity import (
    KeyFileError,
    RosterEntry,
    create_party,
    entry_path,
    identity_path,
    load_party,
    load_roster_entries,
    sealing_path,
)

PARTIES = ("st-mary", "northgate", "riverside")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def federation(tmp_path: Path, capsys: pytest.CaptureFixture) -> dict:
    """Each party runs its own commands in its own folder; pub/ is what they exchange."""
    pub, server = tmp_path / "pub", tmp_path / "to-server"
    pub.mkdir()
    for n in PARTIES:
        assert main(["keys", "init", "--party", n, "--out", str(tmp_path / n)]) == 0
        assert main(["keys", "export", "--party-dir", str(tmp_path / n), "--out", str(pub / f"{n}.entry.json")]) == 0
    assert main(["keys", "roster", *[str(pub / f"{n}.entry.json") for n in PARTIES],
                 "--out", str(pub / "roster.json")]) == 0
    assert main(["keys", "ckks-seal", "--party-dir", str(tmp_path / "st-mary"), "--roster", str(pub / "roster.json"),
                 "--out", str(server)]) == 0
    for n in PARTIES[1:]:
        assert main(["keys", "ckks-open", "--party-dir", str(tmp_path / n), "--roster", str(pub / "roster.json"),
                     str(server / "sealed" / f"{n}.json")]) == 0
    out = capsys.readouterr().out
    secrets = {k: v for n in PARTIES for k, v in party_secrets(n, tmp_path / n).items()}
    return {"root": tmp_path, "pub": pub, "server": server, "out": out, "secrets": secrets}


def test_scanner_finds_a_key_in_every_encoding() -> None:
    ed, x = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    raw = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    xraw = x.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    none = serialization.NoEncryption()
    assert find(raw, b"junk" + raw + b"junk") == "raw"
    assert find(raw, json.dumps({"k": raw.hex()}).encode()) == "hex"
    assert find(raw, base64.b64encode(raw)) == "base64"
    assert find(raw, ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, none))
    assert find(raw, b"x\n" + ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, none))
    assert find(xraw, x.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, none))
    assert find(raw, xraw + raw[:31]) is None


def test_each_party_folder_holds_only_its_own_private_keys(federation: dict) -> None:
    root, secrets = federation["root"], federation["secrets"]
    everything = files_under(root)
    shared = files_under(federation["pub"], federation["server"])
    assert len(shared) == 3 + 1 + 2 + 2  # entries, roster, public context + meta, 2 envelopes
    for n in PARTIES:
        mine = files_under(root / n)
        hits = scan(mine, secrets)
        assert {label for _, label, _ in hits} == {f"{n}/ed25519", f"{n}/x25519"}  # teeth: own keys found
        assert all(path.startswith(str(root / n / "identity")) for path, _, _ in hits)
        for key in (identity_path(root / n), sealing_path(root / n)):
            assert _mode(key) == 0o600 and _mode(key.parent) == 0o700
        assert _mode(root / n) == 0o700
    assert sorted(shared + [f for n in PARTIES for f in files_under(root / n)]) == everything
    assert scan(shared, secrets) == []
    assert not any(find(s, federation["out"].encode()) for s in secrets.values())  # nothing printed
    for n in PARTIES:  # what was printed to read aloud is the roster's fingerprint
        assert load_roster_entries(federation["pub"] / "roster.json")[n].fingerprint() in federation["out"]


def test_sealed_secret_opens_only_for_its_party_and_the_server_files_hold_no_secret(federation: dict) -> None:
    root, server, roster_path = federation["root"], federation["server"], federation["pub"] / "roster.json"
    secret = (root / "st-mary" / SUBDIR / SECRET_FILE).read_bytes()
    for n in PARTIES[1:]:
        assert (root / n / SUBDIR / SECRET_FILE).read_bytes() == secret
        assert _mode(root / n / SUBDIR / SECRET_FILE) == 0o600
    known = [KnownSecret("ckks secret context", secret)] + [KnownSecret(k, v) for k, v in federation["secrets"].items()]
    for folder in (server, federation["pub"]):
        assert scan_key_material(folder, known).status == "pass"
    leaky = root / "leaky"  # teeth: the same scan fails once the secret context is in the folder
    shutil.copytree(server, leaky)
    (leaky / "backup.bin").write_bytes(secret)
    assert scan_key_material(leaky, known).status == "fail"

    roster = load_roster_entries(roster_path)
    envelope = json.loads((server / "sealed" / "northgate.json").read_text())
    header = _header(envelope["from"], envelope["to"], bytes.fromhex(envelope["key_id"]), BFV_4096, False)
    blob = base64.b64decode(envelope["sealed"])
    assert open_for_institution(blob, load_party(root / "northgate").sealing, header) == secret
    for other in ("st-mary", "riverside"):  # only northgate's X25519 key opens northgate's envelope
        with pytest.raises(ValueError, match="failed authentication"):
            open_for_institution(blob, load_party(root / other).sealing, header)
    with pytest.raises(KeyMaterialError, match="addressed to 'riverside', not to 'northgate'"):
        open_sealed(root / "northgate", roster, server / "sealed" / "riverside.json")
    relabelled = json.loads((server / "sealed" / "riverside.json").read_text()) | {"to": "northgate"}
    (root / "relabelled.json").write_text(json.dumps(relabelled))
    with pytest.raises(KeyMaterialError, match="not signed by 'st-mary'"):
        open_sealed(root / "northgate", roster, root / "relabelled.json")
    (root / "junk.json").write_text("{}")
    with pytest.raises(KeyMaterialError, match=r"junk.json: not a sealed-key envelope"):
        open_sealed(root / "northgate", roster, root / "junk.json")


def test_cli_refusals_are_one_line_naming_the_file(federation: dict, capsys: pytest.CaptureFixture) -> None:
    root, server, roster = federation["root"], federation["server"], str(federation["pub"] / "roster.json")
    before = (root / "northgate" / SUBDIR / SECRET_FILE).read_bytes()
    envelope = server / "sealed" / "riverside.json"
    assert main(["keys", "ckks-open", "--party-dir", str(root / "northgate"), "--roster", roster, str(envelope)]) == 2
    out = capsys.readouterr().out
    flat = "".join(out.split())  # the console wraps long lines
    assert "".join(f"{envelope} is addressed to 'riverside'".split()) in flat and "Traceback" not in out
    assert (root / "northgate" / SUBDIR / SECRET_FILE).read_bytes() == before  # nothing lost
    assert main(["keys", "ckks-seal", "--party-dir", str(root / "st-mary"), "--roster", roster, "--out",
                 str(server)]) == 2
    assert "already exists" in capsys.readouterr().out


def test_the_server_cannot_substitute_a_context_it_made(federation: dict, tmp_path: Path) -> None:
    """A server that seals its own context to an institution (to decrypt what it encrypts) is
    refused: the envelope must be signed by a roster party."""
    root, roster = federation["root"], load_roster_entries(federation["pub"] / "roster.json")
    evil = create_party(tmp_path / "evil", "server")
    for sender, signer, match in (("server", evil.signing, "not another party"),
                                  ("st-mary", evil.signing, "not signed by 'st-mary'")):
        header = _header(sender, "northgate", os.urandom(16), BFV_4096, False)
        sealed = seal_for_institution(b"the server's own secret context", roster["northgate"].sealing_key, header)
        doc = {**json.loads(header), "sealed": base64.b64encode(sealed).decode(),
               "signature": base64.b64encode(
                   signer.sign(b"secure_fgrpo ckks sealed secret v1\0" + header + sealed)).decode()}
        (tmp_path / "forged.json").write_text(json.dumps(doc))
        with pytest.raises(KeyMaterialError, match=match):
            open_sealed(root / "northgate", roster, tmp_path / "forged.json")


def test_roster_refuses_duplicates_and_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = (create_party(tmp_path / n, n).entry() for n in ("a", "b"))
    path = tmp_path / "roster.json"
    path.write_text(f'{{"version": 2, "clients": {{"a": {json.dumps(a.to_json())}, "a": {json.dumps(b.to_json())}}}}}')
    with pytest.raises(KeyFileError, match=f"{path}: name 'a' appears twice"):
        load_roster_entries(path)
    for twin in (RosterEntry("b", a.signing, b.sealing), RosterEntry("b", b.signing, a.sealing)):
        path.write_text(json.dumps({"version": 2, "clients": {"a": a.to_json(), "b": twin.to_json()}}))
        with pytest.raises(KeyFileError, match=f"{path}: 'b' and 'a' have the same public key"):
            load_roster_entries(path)
    e = str(entry_path(tmp_path / "a"))
    assert main(["keys", "roster", e, e, "--out", str(tmp_path / "r2.json")]) == 2
    assert "repeats the name 'a'" in capsys.readouterr().out and not (tmp_path / "r2.json").exists()


def test_init_never_overwrites_and_a_tampered_entry_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    create_party(tmp_path / "a", "a")
    before = identity_path(tmp_path / "a").read_bytes()
    assert main(["keys", "init", "--party", "a", "--out", str(tmp_path / "a")]) == 2
    assert "already exists" in capsys.readouterr().out
    assert identity_path(tmp_path / "a").read_bytes() == before
    assert main(["keys", "init", "--party", "bad/name", "--out", str(tmp_path / "x")]) == 2
    assert "party name 'bad/name' must be" in capsys.readouterr().out
    assert main(["keys", "init", "--party", "St Mary's [red]", "--out", str(tmp_path / "sm")]) == 0  # any clients.name
    assert "fingerprint of St Mary's [red]:" in capsys.readouterr().out  # printed as given, not as markup
    doc = json.loads(entry_path(tmp_path / "a").read_text())
    doc["x25519"] = "00" * 32  # someone swaps the sealing key in the entry beside the private keys
    entry_path(tmp_path / "a").write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not match the private keys"):
        load_party(tmp_path / "a")


def test_fingerprint_covers_the_name_and_both_keys() -> None:
    e = RosterEntry("a", b"\1" * 32, b"\2" * 32)
    prints = {e.fingerprint(), RosterEntry("b", e.signing, e.sealing).fingerprint(),
              RosterEntry("a", b"\3" * 32, e.sealing).fingerprint(), RosterEntry("a", e.signing,
                                                                                 b"\3" * 32).fingerprint()}
    assert len(prints) == 4
    assert len(e.fingerprint().split()) == 16
