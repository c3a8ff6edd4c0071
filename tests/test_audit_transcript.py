"""The recorder's payload archive: exactly the bytes the server received, private files,
resumable, and switched by ``audit.archive_payloads``."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from conftest import small_run

from secure_fgrpo.audit.view import AuditInputError, load_view
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.secure_sum.base import Message
from secure_fgrpo.secure_sum.transcript import TranscriptRecorder, archive_name, read_transcript


def _msg(r: int, sender: str, stage: str, payload: bytes) -> Message:
    return Message(r, stage, sender, "server", "vector", payload)


def test_archive_holds_exactly_the_received_bytes(tmp_path: Path) -> None:
    server = tmp_path / "server"
    rec = TranscriptRecorder(server / "transcript.jsonl", server / "inbox")
    msgs = [_msg(1, "a", "input", b"\x00\x01" * 50), _msg(1, "b", "input", b"xyz"), _msg(2, "a", "input", b"")]
    for m in msgs:
        rec.record(m)
    view = load_view(tmp_path)
    assert [view.payload(e) for e in view.entries] == [m.payload for m in msgs]
    for e, m in zip(read_transcript(server / "transcript.jsonl"), msgs, strict=True):
        assert e.digest == hashlib.sha256(m.payload).hexdigest() and e.size == len(m.payload)
    f = server / "inbox" / "round-1" / "a-input.bin"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((server / "inbox" / "round-1").stat().st_mode) == 0o700
    # A second message of one sender in one stage is kept next to the first, not over it.
    rec.record(_msg(1, "a", "input", b"again"))
    view = load_view(tmp_path)
    assert view.payload(view.entries[-1]) == b"again" and view.payload(view.entries[0]) == b"\x00\x01" * 50


def test_tampered_archive_is_refused(tmp_path: Path) -> None:
    rec = TranscriptRecorder(tmp_path / "server" / "transcript.jsonl", tmp_path / "server" / "inbox")
    rec.record(_msg(1, "a", "input", b"original"))
    (tmp_path / "server" / "inbox" / "round-1" / "a-input.bin").write_bytes(b"forged!!")
    view = load_view(tmp_path)
    with pytest.raises(AuditInputError, match="does not match the transcript digest"):
        view.payload(view.entries[0])


def test_unsafe_names_fall_back_to_the_digest() -> None:
    d = "ab" * 32
    assert archive_name("a", "input", d) == "a-input.bin"
    assert archive_name("../x", "input", d) == f"{d[:32]}.bin"
    assert archive_name(".hidden", "input", d) == f"{d[:32]}.bin"


def test_resume_drops_the_archive_of_unfinished_rounds(tmp_path: Path) -> None:
    server = tmp_path / "server"
    rec = TranscriptRecorder(server / "transcript.jsonl", server / "inbox")
    for r in (1, 2, 3):
        rec.record(_msg(r, "a", "input", bytes([r])))
    rec.truncate_after(1)
    assert sorted(p.name for p in (server / "inbox").iterdir()) == ["round-1"]
    assert [e.round for e in read_transcript(server / "transcript.jsonl")] == [1]


def test_no_archive_without_a_folder(tmp_path: Path) -> None:
    rec = TranscriptRecorder(tmp_path / "server" / "transcript.jsonl")
    rec.record(_msg(1, "a", "input", b"abc"))
    assert not (tmp_path / "server" / "inbox").exists()
    view = load_view(tmp_path)
    assert not view.archived and view.payload(view.entries[0]) is None


def test_config_switch() -> None:
    assert config_from_dict(small_run()).audit.archive_payloads is True
    assert config_from_dict(small_run(**{"audit.archive_payloads": False})).audit.archive_payloads is False
    with pytest.raises(ConfigError, match=r"audit.archive_payloads"):
        config_from_dict(small_run(**{"audit.archive_payloads": "yes"}))
