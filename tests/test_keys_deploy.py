"""A deployment's commands, each run by the party it names: the coordinator's CA and SuperLink
keys, each institution's SuperNode key and identity, the roster. No file they write holds
another party's private key (issue 12 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("secure_fgrpo.deploy.cli", reason="secure_fgrpo/deploy/ is not on this branch")

from keys_support import files_under, party_secrets, pem_secret, scan

from secure_fgrpo.cli import main

PARTIES = ("st-mary", "northgate", "riverside")


def test_no_deployment_file_holds_another_partys_private_key(tmp_path: Path) -> None:
    coord, pub = tmp_path / "coordinator", tmp_path / "pub"
    pub.mkdir()
    assert main(["deploy", "certs", "--out", str(coord / "certs"), "--host", "127.0.0.1"]) == 0
    for n in PARTIES:
        inst = tmp_path / n
        assert main(["deploy", "node-key", "--out", str(inst / "node-key"), "--name", n]) == 0
        assert main(["deploy", "identity", "--state", str(inst / "state"), "--name", n,
                     "--out", str(pub / f"{n}.identity.json")]) == 0
    assert main(["deploy", "roster", "--out", str(pub / "roster.json"),
                 *[str(pub / f"{n}.identity.json") for n in PARTIES]]) == 0
    owners = {"coordinator": {f"coordinator/{k.name}": pem_secret(k) for k in (coord / "certs").glob("*.key")}}
    assert len(owners["coordinator"]) == 2  # the CA key and the SuperLink key
    for n in PARTIES:
        owners[n] = {
            **party_secrets(n, tmp_path / n / "state"),
            f"{n}/node-key": pem_secret(tmp_path / n / "node-key" / n),
        }
    every = {label: secret for secrets in owners.values() for label, secret in secrets.items()}
    assert len(set(every.values())) == len(every) == 2 + 3 * 3
    for owner, secrets in owners.items():
        mine = files_under(tmp_path / owner)
        assert {label for _, label, _ in scan(mine, every)} == set(secrets), owner  # own keys only, all found
    shared = files_under(pub)
    assert len(shared) == len(PARTIES) + 1 and scan(shared, every) == []
    assert sorted(shared + [f for o in owners for f in files_under(tmp_path / o)]) == files_under(tmp_path)
