"""Run folders: nothing the user did not create with this package is deleted, and a run is
continued only under a config that gives the same results (issue 15, items 1 and 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import small_run

from secure_fgrpo.cli import main
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import to_dict
from secure_fgrpo.errors import RunFolderError
from secure_fgrpo.runfolder import MARKER, differing_keys, is_run, open_run_folder


def _raw(**over: object) -> dict:
    return to_dict(config_from_dict(small_run(**over)))


def test_demo_refuses_a_folder_it_did_not_create(tmp_path, capsys) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    assert main(["demo", "--out", str(d), "--rounds", "1"]) == 2
    assert (d / "notes.txt").read_text() == "x"
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]  # nothing written there either
    out = capsys.readouterr().out
    assert "not a secure_fgrpo run" in out and "notes.txt" in out and "Traceback" not in out
    for flag in ("--fresh", "--resume"):  # no flag makes it ours
        assert main(["demo", "--out", str(d), "--rounds", "1", flag]) == 2
        assert (d / "notes.txt").read_text() == "x"


def test_out_that_is_a_file_is_one_line(tmp_path, capsys) -> None:
    f = tmp_path / "file"
    f.write_text("keep")
    assert main(["demo", "--out", str(f), "--rounds", "1"]) == 2  # was: FileExistsError
    assert "is a file, not a folder" in capsys.readouterr().out and f.read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder (see the EROFS test)")
def test_read_only_parent_is_one_line(tmp_path, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["demo", "--out", str(ro / "run"), "--rounds", "1"]) == 2
        out = capsys.readouterr().out
        assert str(ro / "run") in out and "Traceback" not in out
    finally:
        ro.chmod(0o700)


def test_read_only_folder_is_refused(tmp_path, monkeypatch) -> None:
    """The same refusal through the file system's own error (EROFS; works as root, unlike chmod)."""
    target = tmp_path / "ro" / "run"

    def refuse(*args: object, **kw: object) -> None:
        raise OSError(30, "Read-only file system", str(target))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(RunFolderError, match=r"ro/run: cannot write the run folder there \(Read-only file system\)"):
        open_run_folder(target, _raw(), "resume")


def test_resume_and_fresh_on_our_own_run(tmp_path) -> None:
    run = tmp_path / "run"
    assert not open_run_folder(run, _raw(), "resume").existed
    assert is_run(run) and (run / MARKER).is_file()
    (run / "server").mkdir()
    (run / "server" / "state.json").write_text('{"last_completed_round": 1}')
    (run / "mine.txt").write_text("user notes")
    assert open_run_folder(run, _raw(**{"federation.workers": 2}), "resume").existed  # workers: same results
    assert open_run_folder(run, _raw(), "fresh").existed is False
    assert not (run / "server").exists()  # ours: removed
    assert (run / "mine.txt").read_text() == "user notes"  # not ours: kept
    assert is_run(run)


def test_changed_config_is_refused_naming_the_keys(tmp_path) -> None:
    run = tmp_path / "run"
    open_run_folder(run, _raw(), "resume")
    open_run_folder(run, _raw(**{"seed": 9}), "resume")  # nothing computed yet (a first try that failed)
    assert json.loads((run / "config.json").read_text())["seed"] == 9
    (run / "server").mkdir()  # the run has started
    before = (run / "config.json").read_text()
    with pytest.raises(RunFolderError) as err:
        open_run_folder(run, _raw(**{"federation.strategy": "fedavg", "secure_sum.backend": "masked"}), "resume")
    assert "federation.strategy" in str(err.value) and "secure_sum.backend" in str(err.value)
    assert (run / "config.json").read_text() == before  # the run's record is not overwritten


def test_which_keys_may_differ() -> None:
    base = _raw()
    assert differing_keys(base, _raw(**{"federation.workers": 3, "model.device": "auto"})) == []
    assert differing_keys(base, _raw(**{"federation.rounds": 5})) == []  # no DP: more rounds extend the run
    dp = {"privacy.client_level": {"epsilon": 8.0, "mechanism": "local"}}
    assert differing_keys(_raw(**dp), _raw(**dp, **{"federation.rounds": 5})) == ["federation.rounds"]
    assert differing_keys(base, _raw(**{"seed": 4})) == ["seed"]


def test_cli_run_refuses_a_changed_config(tmp_path, capsys) -> None:
    """`run` on a started run with fgrpo -> fedavg, plaintext -> masked: exit 2, keys named, config kept."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from toml_out import dumps

    run = tmp_path / "run"
    open_run_folder(run, _raw(), "resume")
    (run / "server").mkdir()
    cfg = tmp_path / "changed.toml"
    cfg.write_text(dumps(small_run(**{"federation.strategy": "fedavg", "secure_sum.backend": "masked"})))
    before = (run / "config.json").read_text()
    assert main(["run", str(cfg), "--out", str(run)]) == 2
    out = capsys.readouterr().out
    assert "different config" in out and "federation.strategy" in out and "secure_sum.backend" in out
    assert (run / "config.json").read_text() == before
    assert json.loads(before)["secure_sum"]["backend"] == "plaintext"
