"""The inventory lists what the server received and flags per-client data in clear: plaintext
payload kinds, per-client metrics keys, and payload sizes that vary across senders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_fgrpo.audit.inventory import build_inventory, classify_metric
from secure_fgrpo.audit.view import AuditInputError, load_view


def _entry(r: int, stage: str, sender: str, kind: str, size: int) -> dict:
    return {"round": r, "stage": stage, "sender": sender, "recipient": "server", "kind": kind, "size": size,
            "digest": f"{r}{sender}{stage}".ljust(64, "0")}


def _run(tmp: Path, entries: list[dict], metrics: list[dict]) -> Path:
    server = tmp / "server"
    server.mkdir(parents=True)
    (server / "transcript.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    (server / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return tmp


AGG = [{"round": 1, "contributors": 3, "aborted": False, "update_norm": 0.3, "sum_of_weights": 7.9,
        "global_accuracy": 0.1}]


def test_plaintext_vectors_are_flagged_and_listed(tmp_path: Path) -> None:
    run = _run(tmp_path, [_entry(1, "input", n, "vector", 800) for n in "abc"], AGG)
    inv = build_inventory(load_view(run))
    assert inv.backend == "plaintext"
    [row] = inv.rows
    assert (row.round, row.stage, row.kind, row.count, row.bytes_total, row.senders) == (1, "input", "vector", 3, 2400,
                                                                                         ("a", "b", "c"))
    assert [f.code for f in inv.flags] == ["plaintext-per-client-payload"] and inv.per_client_plaintext
    assert any("every client's" in c for c in inv.computable)


def test_masked_and_ckks_transcripts_have_no_flag(tmp_path: Path) -> None:
    stages = [("advertise", "advertise", 134), ("share", "shares", 391), ("masked_input", "masked", 9000),
              ("consistency", "ack", 102), ("unmask", "unmask", 217)]
    masked = [_entry(1, s, n, k, size) for s, k, size in stages for n in "abc"]
    inv = build_inventory(load_view(_run(tmp_path / "m", masked, AGG)))
    assert inv.backend == "masked" and inv.flags == []
    assert any("no individual vector" in c for c in inv.computable)
    ckks = [_entry(1, "input", n, "ciphertexts", 5000) for n in "abc"] + [_entry(1, "decrypt", "b", "plain-sum", 800)]
    inv = build_inventory(load_view(_run(tmp_path / "c", ckks, AGG)))
    assert inv.backend == "ckks" and inv.flags == []
    assert {r.protection for r in inv.rows} == {"encrypted", "aggregate"}
    blind = build_inventory(load_view(_run(tmp_path / "b", ckks[:3], [{"round": 1, "contributors": 3}])))
    assert any("server-blind" in c for c in blind.computable)


@pytest.mark.parametrize("planted", [
    {"gain_b": 0.42},                       # a key naming a participant
    {"weights": {"a": 1.0, "b": 2.0}},      # a table keyed by participants
    {"rewards": [0.1, 0.5, 0.9]},           # one entry per participant
    {"client_gain": 0.3},                   # a per-client quantity without an aggregate marker
])
def test_planted_per_client_metric_is_flagged(tmp_path: Path, planted: dict) -> None:
    entries = [_entry(1, "input", n, "ciphertexts", 5000) for n in "abc"]
    run = _run(tmp_path, entries, [{**AGG[0], **planted}])
    inv = build_inventory(load_view(run))
    [key] = planted
    assert inv.metric_keys[key] == "per-client"
    assert [f.code for f in inv.flags] == ["per-client-metric"] and key in inv.flags[0].where
    assert inv.per_client_plaintext


def test_size_varying_with_sender_is_flagged(tmp_path: Path) -> None:
    entries = [_entry(1, "input", "a", "ciphertexts", 5000), _entry(1, "input", "b", "ciphertexts", 5000),
               _entry(1, "input", "c", "ciphertexts", 5016)]
    inv = build_inventory(load_view(_run(tmp_path, entries, AGG)))
    assert [f.code for f in inv.flags] == ["size-varies-by-sender"] and "5000..5016" in inv.flags[0].detail
    # Sizes of protocol messages that depend on public structure (neighbour lists) are not flagged.
    shares = [_entry(1, "share", "a", "shares", 391), _entry(1, "share", "b", "shares", 420)]
    assert build_inventory(load_view(_run(tmp_path / "s", shares, AGG))).flags == []


def test_unknown_kind_and_unreviewed_metric_are_warnings(tmp_path: Path) -> None:
    run = _run(tmp_path, [_entry(1, "input", "a", "gainblob", 8)], [{**AGG[0], "lr_used": 1.0}])
    inv = build_inventory(load_view(run))
    assert {(f.severity, f.code) for f in inv.flags} == {("warn", "unclassified-kind"), ("warn", "unreviewed-metric")}


def test_epsilon_keys_are_read_per_round(tmp_path: Path) -> None:
    rows = [{"round": r, "contributors": 3, "dp_client_epsilon": 0.5 * r, "dp_client_delta": 1e-5,
             "dp_client_noise_multiplier": 1.2, "epsilon_total": 0.7 * r} for r in (1, 2)]
    entries = [_entry(r, "input", n, "masked", 100) for r in (1, 2) for n in "ab"]
    inv = build_inventory(load_view(_run(tmp_path, entries, rows)))
    assert inv.epsilon == {"dp_client_epsilon": 1.0, "epsilon_total": 1.4}
    assert inv.epsilon_by_round["dp_client_epsilon"] == {1: 0.5, 2: 1.0}
    assert inv.flags == [] and inv.metric_keys["dp_client_noise_multiplier"] == "dp"


def test_classify_metric_keeps_aggregates() -> None:
    parts = {"a", "b", "c"}
    for key in ("sum_of_weights", "update_norm", "global_accuracy", "mean_reward", "total_examples"):
        assert classify_metric(key, 1.0, parts)[0] in ("aggregate", "unreviewed"), key
    assert classify_metric("reward", 1.0, parts)[0] == "per-client"


def test_missing_transcript_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditInputError, match="no server transcript"):
        load_view(tmp_path)


def test_cli_audit_on_a_non_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from secure_fgrpo.cli import main

    assert main(["audit", str(tmp_path)]) == 2
    assert "no server transcript" in capsys.readouterr().out
