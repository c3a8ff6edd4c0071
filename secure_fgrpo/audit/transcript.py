"""The one recorder every message to the server goes through: ``server/transcript.jsonl``.

It records metadata (round, stage, sender, kind, size, digest), never payload bytes, so the
transcript itself leaks nothing a network observer would not see.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from ..secure_sum.base import Message


@dataclass(frozen=True)
class TranscriptEntry:
    round: int
    stage: str
    sender: str
    recipient: str
    kind: str
    size: int
    digest: str


class TranscriptRecorder:
    """Appends one JSON line per message received by the server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, msg: Message) -> None:
        entry = TranscriptEntry(msg.round, msg.stage, msg.sender, msg.recipient, msg.kind,
                                len(msg.payload), msg.digest)
        with self.path.open("a") as fh:
            fh.write(json.dumps(asdict(entry)) + "\n")

    def truncate_after(self, last_round: int) -> None:
        """On resume: drop entries from a round that never completed (it is re-run)."""
        if not self.path.exists():
            return
        keep = [e for e in read_transcript(self.path) if e.round <= last_round]
        self.path.write_text("".join(json.dumps(asdict(e)) + "\n" for e in keep))


def read_transcript(path: Path) -> Iterator[TranscriptEntry]:
    with path.open() as fh:
        for line in fh:
            if line.strip():
                yield TranscriptEntry(**json.loads(line))
