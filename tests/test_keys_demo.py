"""A demo run plays every party on one machine; each party's private keys must still land only
in its own folder: no file under RUN/server/, under another client's folder, or at the top of
RUN holds client b's private key (issue 12 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_run
from keys_support import files_under, party_secrets, scan

from secure_fgrpo.audit.keyscan import KnownSecret, scan_key_material
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import to_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.report import save_run_config
from secure_fgrpo.secure_sum.base import client_state_dir
from secure_fgrpo.secure_sum.ckks.keys import SECRET_FILE


@pytest.fixture(scope="module", params=["masked", "ckks"])
def demo_run(request: pytest.FixtureRequest, quick_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = config_from_dict(small_run(**{"federation.rounds": 1, "secure_sum.backend": request.param}))
    run = tmp_path_factory.mktemp(request.param) / "run"
    save_run_config(run, to_dict(cfg))
    Federation(cfg, run).run()
    return run


def test_no_file_outside_a_clients_folder_holds_its_private_keys(demo_run: Path) -> None:
    names = sorted(p.name for p in (demo_run / "clients").iterdir())
    assert names == ["a", "b", "c"]
    everything = files_under(demo_run)
    for b in names:
        secrets = party_secrets(b, client_state_dir(demo_run, b))
        own = demo_run / "clients" / b
        elsewhere = [p for p in everything if not p.is_relative_to(own)]
        assert any(p.is_relative_to(demo_run / "server") for p in elsewhere)
        assert scan(elsewhere, secrets) == [], b
        assert {label for _, label, _ in scan(files_under(own), secrets)} == set(secrets)  # teeth


def test_the_server_folder_holds_no_secret_and_no_identity(demo_run: Path) -> None:
    known = [KnownSecret(k, v) for b in ("a", "b", "c")
             for k, v in party_secrets(b, client_state_dir(demo_run, b)).items()]
    known += [KnownSecret(f"{p.parent.parent.parent.name} ckks secret", p.read_bytes())
              for p in (demo_run / "clients").glob(f"*/keys/ckks/{SECRET_FILE}")]
    ckks = (demo_run / "server" / "keys" / "ckks").exists()
    assert len(known) == (9 if ckks else 6)
    if ckks:  # the secret reached b and c only sealed (to their X25519 keys), through the server's folder
        assert sorted(p.name for p in (demo_run / "server" / "keys" / "ckks" / "sealed").iterdir()) == [
            "b.json",
            "c.json",
        ]
    assert scan_key_material(demo_run / "server", known).status == "pass"
    assert not list((demo_run / "server").rglob("identity"))
