"""What used to be a traceback is one line naming the file, folder or key, with a non-zero exit
(issue 15): a missing model.path, a full disk (and no .tmp left behind), damaged checkpoints
and state files."""

from __future__ import annotations

import errno
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run
from toml_out import dumps

from secure_fgrpo import cli, fileio
from secure_fgrpo.cli import main
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.data.partition import ClientData
from secure_fgrpo.errors import CheckpointError
from secure_fgrpo.federation import store
from secure_fgrpo.federation.client import Client
from secure_fgrpo.federation.global_model import GlobalModel
from secure_fgrpo.federation.server import Server
from secure_fgrpo.federation.store import save_npz_atomic, write_json_atomic
from secure_fgrpo.federation.update import ServerOptConfig


def _one_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out, out
    return lines[0]


def test_missing_model_path(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(dumps(small_run(**{"model.path": str(tmp_path / "no" / "such-model")})))
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2  # was: "Repo id must be in the form"
    line = _one_line(capsys.readouterr().out)
    assert "model.path" in line and "no/such-model" in line and "does not exist" in line


def _enospc(*args: object, **kw: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_leaves_no_tmp_and_names_the_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(fileio.os, "write", _enospc)  # the 0600 writer's writes
    with pytest.raises(OSError) as err:
        fileio.write_private(tmp_path / "k" / "secret.bin", b"x" * 10)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "k" / "secret.bin")
    assert list((tmp_path / "k").iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setattr(store.json, "dump", _enospc)
    with pytest.raises(OSError, match="No space left on device") as err:
        write_json_atomic(tmp_path / "s" / "state.json", {"a": 1})
    assert err.value.filename == str(tmp_path / "s" / "state.json") and list((tmp_path / "s").iterdir()) == []
    monkeypatch.setattr(store.np, "savez", _enospc)
    with pytest.raises(OSError):
        save_npz_atomic(tmp_path / "c" / "round-1.npz", vector=np.zeros(3))
    assert list((tmp_path / "c").iterdir()) == []


def test_full_disk_at_the_cli_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(store.json, "dump", _enospc)
    run = tmp_path / "run"
    assert main(["demo", "--out", str(run), "--rounds", "1"]) == 2  # was: Errno 28 traceback, a .tmp left
    line = _one_line(capsys.readouterr().out)
    assert str(run) in line and "No space left on device" in line
    assert not list(run.rglob("*.tmp"))

    def mid_run(*args: object, **kw: object) -> int:  # the same during a round: the file is named
        raise OSError(errno.ENOSPC, "No space left on device", str(run / "server" / "checkpoints" / "round-1.npz"))

    monkeypatch.setattr(cli, "_run", mid_run)
    assert main(["demo", "--out", str(run), "--rounds", "1"]) == 2
    assert _one_line(capsys.readouterr().out).endswith("round-1.npz: No space left on device")


def _checkpoint(folder: Path) -> Path:
    save_npz_atomic(folder / "round-1.npz", vector=np.arange(4000, dtype=np.float32))
    return folder / "round-1.npz"


@pytest.mark.parametrize("damage", ["truncate", "garble", "empty"])
def test_damaged_checkpoint(tmp_path, damage) -> None:
    path = _checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":  # was: BadZipFile / EOFError
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "garble":  # was: Bad CRC-32
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        GlobalModel([tmp_path], ServerOptConfig(), np.zeros(4000, dtype=np.float32), upto=1)
    assert str(err.value).startswith(f"{path}: damaged checkpoint") and "--fresh" in str(err.value)
    if damage == "garble":
        with pytest.raises(zipfile.BadZipFile), np.load(path) as z:  # the teeth: numpy itself does notice
            z["vector"]


def test_damaged_client_and_server_state(tmp_path) -> None:
    cfg = config_from_dict(small_run())
    client = Client(cfg.clients[0], ClientData("a", {"vitals": 1.0}, [], []), tmp_path / "a", cfg)
    state = tmp_path / "a" / "state" / "round-1.json"
    write_json_atomic(state, {"round": 1, "gain": {"baseline": 0.1}}, private=True)
    state.write_text('{"round": 1 "gain": {}}')  # was: "Expecting ',' delimiter" with no file named
    with pytest.raises(CheckpointError, match=rf"{state}: damaged state file \(Expecting ',' delimiter"):
        client.resume(1)
    server = Server(tmp_path / "server", cfg, ["a", "b", "c"])
    (tmp_path / "server" / "state.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"server/state.json: unreadable server state"):
        _ = server.last_completed_round
    (tmp_path / "server" / "state.json").write_text(json.dumps({"last_completed_round": "x"}))
    with pytest.raises(CheckpointError, match="must be a round number"):
        _ = server.last_completed_round
    (tmp_path / "server" / "metrics.jsonl").write_text('{"round": 1}\n{"round": 2,\n')
    with pytest.raises(CheckpointError, match=r"metrics.jsonl: line 2 is damaged"):
        server.metrics.rows()


def test_some_aborted_rounds_are_a_warning_all_are_a_failure(tmp_path, capsys) -> None:
    server = tmp_path / "server"
    server.mkdir()
    rows = [{"round": 1, "aborted": False}, {"round": 2, "aborted": True, "reason": "2 of 3 survived"}]
    (server / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli._all_aborted(tmp_path) == ""
    assert "1 of 2 rounds aborted (rounds 2): 2 of 3 survived" in capsys.readouterr().out
    rows[0].update(aborted=True, reason="2 of 3 survived")
    (server / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli._all_aborted(tmp_path).startswith("every round (2) aborted")


def test_zero_rounds_is_refused_not_the_default(tmp_path, capsys) -> None:
    assert main(["demo", "--rounds", "0", "--out", str(tmp_path / "run")]) == 2  # was: silently 6 rounds
    assert "federation.rounds must be >= 1, got 0" in _one_line(capsys.readouterr().out)
    assert not (tmp_path / "run").exists()


def test_reveal_has_no_empty_choice(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = capsys.readouterr().out
    assert "{server-learns-sum,server-blind}" in help_text and "{,server" not in help_text
