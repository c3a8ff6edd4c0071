"""A deployment's commands, each run by the party it names: the coordinator's CA and SuperLink
keys; each institution's identity (``keys init``/``export``) and SuperNode key; the roster from
the entries (``keys roster``). No file they write holds another party's private key (issue 12
item 3), and the loopback harness lays a deployment out the same way, one folder per party."""

from __future__ import annotations

from pathlib import Path

import pytest
from keys_support import assert_custody, deployment_owners, files_under, party_secrets, pem_secret

from secure_fgrpo.cli import main
from secure_fgrpo.deploy.loopback import LoopbackFederation
from secure_fgrpo.secure_sum.identity import load_roster_entries

PARTIES = ("st-mary", "northgate", "riverside")


def test_no_deployment_file_holds_another_partys_private_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    coord, pub = tmp_path / "coordinator", tmp_path / "pub"
    assert main(["deploy", "certs", "--out", str(coord / "certs"), "--host", "127.0.0.1"]) == 0
    for n in PARTIES:
        inst = tmp_path / n
        assert main(["keys", "init", "--party", n, "--out", str(inst / "state")]) == 0
        assert main(["keys", "export", "--party-dir", str(inst / "state"), "--out", str(pub / f"{n}.entry.json")]) == 0
        assert main(["deploy", "node-key", "--out", str(inst / "node-key"), "--name", n]) == 0
    entries = [str(pub / f"{n}.entry.json") for n in PARTIES]
    assert main(["keys", "roster", "--out", str(pub / "roster.json"), *entries]) == 0
    out = capsys.readouterr().out
    owners = {coord: {f"coordinator/{k.name}": pem_secret(k) for k in (coord / "certs").glob("*.key")}}
    assert len(owners[coord]) == 2  # the CA key and the SuperLink key
    for n in PARTIES:
        owners[tmp_path / n] = {**party_secrets(n, tmp_path / n / "state"),
                                f"{n}/node-key": pem_secret(tmp_path / n / "node-key" / n)}
    assert_custody(owners, [pub], files_under(tmp_path))
    roster = load_roster_entries(pub / "roster.json")
    assert sorted(roster) == sorted(PARTIES)
    assert all(roster[n].sealing is not None and roster[n].fingerprint() in out for n in PARTIES)


def test_the_loopback_harness_gives_every_party_its_own_folder(tmp_path: Path) -> None:
    fed = LoopbackFederation(tmp_path, list(PARTIES))
    fed.prepare()  # files only: no process starts
    owners = deployment_owners(fed)
    assert sorted(p.name for p in owners) == sorted(["coordinator", *PARTIES])
    assert_custody(owners, [fed.pub], files_under(tmp_path))
    # The roster is the one `keys roster` writes: version 2, both public keys per party.
    roster = load_roster_entries(fed.roster)
    assert sorted(roster) == sorted(PARTIES) and all(e.sealing is not None for e in roster.values())
    assert {fed.env(n)["FLWR_HOME"] for n in PARTIES} == {str(fed.node_dir(n) / "flwr-home") for n in PARTIES}


@pytest.mark.parametrize("argv, pointer", [
    (["deploy", "identity", "--state", "STATE", "--name", "hosp-a"], "keys init --party NAME --out STATE"),
    (["deploy", "roster", "--out", "roster.json", "a.json", "b.json"], "keys roster ENTRY... --out roster.json"),
])
def test_old_deploy_identity_commands_point_at_keys(argv: list[str], pointer: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("error: deploy ") and pointer in out and "Traceback" not in out
    assert list(tmp_path.iterdir()) == []  # nothing written
