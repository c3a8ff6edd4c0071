"""The one recorder every message to the server goes through: ``server/transcript.jsonl``.

The transcript records metadata (round, stage, sender, kind, size, digest), never payload
bytes, so the transcript itself leaks nothing a network observer would not see.

Optionally (``audit.archive_payloads``, on by default) the recorder also keeps the exact bytes
the server received under ``server/inbox/round-R/<sender>-<stage>.bin`` (0600 files, 0700
folders): the server's own view, which the payload checks and the attacks of
``secure-fgrpo audit`` need. It adds nothing the server did not already hold; with the
plaintext backend it *is* every client's update, which is exactly what the audit must show.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..fileio import write_private
from .base import Message

INBOX = "inbox"
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_ROUND_DIR = re.compile(r"^round-(\d+)$")


@dataclass(frozen=True)
class AuditConfig:
    """``[audit]``: whether the server archives the payloads it receives (for the audit)."""

    archive_payloads: bool = True


@dataclass(frozen=True)
class TranscriptEntry:
    round: int
    stage: str
    sender: str
    recipient: str
    kind: str
    size: int
    digest: str


def archive_name(sender: str, stage: str, digest: str) -> str:
    """``<sender>-<stage>.bin``; a name that is not a plain token is replaced by the digest
    (the transcript's digest links the file to its entry either way)."""
    if _SAFE.match(sender) and _SAFE.match(stage) and not sender.startswith("."):
        return f"{sender}-{stage}.bin"
    return f"{digest[:32]}.bin"


class TranscriptRecorder:
    """Appends one JSON line per message received by the server; with ``archive_dir`` also
    stores the payload bytes there, one file per message."""

    def __init__(self, path: Path, archive_dir: Path | None = None) -> None:
        self.path = path
        self.archive_dir = archive_dir
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, msg: Message) -> None:
        entry = TranscriptEntry(msg.round, msg.stage, msg.sender, msg.recipient, msg.kind,
                                len(msg.payload), msg.digest)
        if self.archive_dir is not None:
            self._archive(self.archive_dir, msg, entry.digest)
        with self.path.open("a") as fh:
            fh.write(json.dumps(asdict(entry)) + "\n")

    def _archive(self, root: Path, msg: Message, digest: str) -> None:
        folder = root / f"round-{int(msg.round)}"
        for d in (root, folder):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(d, 0o700)
        path = folder / archive_name(msg.sender, msg.stage, digest)
        if path.exists() and _sha256(path) != digest:  # a second message in the same stage
            path = path.with_name(f"{path.stem}-{digest[:16]}.bin")
        write_private(path, msg.payload)

    def truncate_after(self, last_round: int) -> None:
        """On resume: drop entries (and archived payloads) from a round that never completed."""
        if self.archive_dir is not None and self.archive_dir.exists():
            for d in self.archive_dir.iterdir():
                m = _ROUND_DIR.match(d.name)
                if m and int(m.group(1)) > last_round:
                    shutil.rmtree(d)
        if not self.path.exists():
            return
        keep = [e for e in read_transcript(self.path) if e.round <= last_round]
        self.path.write_text("".join(json.dumps(asdict(e)) + "\n" for e in keep))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_transcript(path: Path) -> Iterator[TranscriptEntry]:
    with path.open() as fh:
        for line in fh:
            if line.strip():
                yield TranscriptEntry(**json.loads(line))
