"""A 2-round masked federation with PubSwap on (embedded model, tiny sizes): a client's PubSwap
step used a pool response, the global adapter moved, the audit inventory lists the new message
kinds with one fixed size each, and no response a client offered is readable anywhere in the
server's folder — while the same scan finds every one of them in the clients' own unsealed
offers (the scan has teeth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.audit.inventory import build_inventory
from secure_fgrpo.audit.runner import audit_run
from secure_fgrpo.audit.view import load_view
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.federation.store import read_jsonl

BLOB = 48


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    cfg = config_from_dict(small_run(**{"secure_sum.backend": "masked", "pubswap.enabled": True,
                                        "pubswap.prompts": 4, "pubswap.responses": 2, "pubswap.blob_bytes": BLOB}))
    out = tmp_path_factory.mktemp("pubswap-masked")
    Federation(cfg, out).run()
    return out


def _records(run: Path) -> list[bytes]:
    """Every real (non-dummy) plaintext record the clients sealed: exactly what went into AES-GCM."""
    out = []
    for f in sorted(run.glob("clients/*/pubswap/offers-round-*.bin")):
        raw = f.read_bytes()
        out += [raw[i:i + BLOB] for i in range(0, len(raw), BLOB) if raw[i] == 1]
    return out


def _found(records: list[bytes], root: Path) -> set[bytes]:
    blobs = [p.read_bytes() for p in root.rglob("*") if p.is_file()]
    return {r for r in records if any(r in b for b in blobs)}


def test_a_pubswap_step_used_a_pool_response_and_the_global_moved(run: Path) -> None:
    rows = {n: read_jsonl(run / "clients" / n / "metrics.jsonl") for n in "abc"}
    assert all(r[0]["pubswap_steps"] == 0 and r[0]["pubswap_pool"] == 0 for r in rows.values())  # no pool yet
    second = [r[1] for r in rows.values()]
    assert any(r["pubswap_replaced"] > 0 and r["pubswap_groups"] > 0 for r in second), second
    assert all(r["pubswap_dropped"] == 0 for r in second)
    v1, v2 = (np.load(run / f"server/checkpoints/round-{i}.npz")["vector"] for i in (1, 2))
    assert not np.allclose(v1, v2)


def test_inventory_lists_the_exchange_with_fixed_sizes(run: Path) -> None:
    inv = build_inventory(load_view(run))
    rows = {(r.round, r.kind): r for r in inv.rows}
    for key in ((1, "sealed-responses"), (2, "sealed-responses"), (2, "pubswap-relay")):
        r = rows[key]
        assert r.protection == "encrypted" and r.size_min == r.size_max and r.count == 3, r
    assert rows[(1, "sealed-responses")].senders == ("a", "b", "c")
    assert rows[(2, "pubswap-relay")].senders == ("server",)
    assert not inv.flags and not inv.per_client_plaintext
    assert any("PubSwap" in line for line in inv.computable)


def test_audit_report_shows_the_exchange(run: Path, tmp_path: Path) -> None:
    report = audit_run(run, tmp_path, attacks=False)
    kinds = {(r["kind"], r["protection"]) for r in report["inventory"]["rows"]}
    assert {("sealed-responses", "encrypted"), ("pubswap-relay", "encrypted")} <= kinds
    assert report["summary"]["high_flags"] == 0 and not report["summary"]["checks_failed"]
    html = (tmp_path / "report.html").read_text()
    assert "sealed-responses" in html and "pubswap-relay" in html


def test_no_response_is_readable_at_the_server(run: Path) -> None:
    records = _records(run)
    assert len(records) >= 3  # the clients did offer correct responses
    assert _found(records, run / "server") == set()
    # teeth: the same scan finds every record in the clients' unsealed offers
    assert _found(records, run / "clients") == set(records)


def test_plaintext_backend_runs_the_same_exchange_across_a_restart(tmp_path: Path) -> None:
    """Round 1, a fresh process (a new Federation on the same folder), round 2: the relay of
    round 1's blobs comes from the server's store on disk and the pool is used."""
    cfg = config_from_dict(small_run(**{"secure_sum.backend": "plaintext", "pubswap.enabled": True,
                                        "pubswap.prompts": 4, "pubswap.blob_bytes": BLOB, "federation.rounds": 2}))
    Federation(cfg, tmp_path).run(rounds=1)
    assert (tmp_path / "server/pubswap/round-1").is_dir()
    Federation(cfg, tmp_path).run()
    second = [read_jsonl(tmp_path / "clients" / n / "metrics.jsonl")[1] for n in "abc"]
    assert all(r["round"] == 2 for r in second)
    assert any(r["pubswap_pool"] > 0 and r["pubswap_replaced"] > 0 for r in second), second
    assert _found(_records(tmp_path), tmp_path / "server") == set()
