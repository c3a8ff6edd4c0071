"""The server's view of a run, loaded from ``RUN/server/`` alone.

The auditor stands where the server stands: it opens ``RUN/server/`` (transcript, metrics,
archived payloads, its own keys and checkpoints) and ``RUN/config.json`` (the public run
configuration the server is started with). It never opens ``RUN/clients/`` nor
``RUN/global_metrics.jsonl`` (which belongs to the clients when the server is blind).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..secure_sum.transcript import INBOX, TranscriptEntry, archive_name, read_transcript

log = logging.getLogger(__name__)


class AuditInputError(ValueError):
    """The folder is not a run the auditor can read (names the file and what is wrong)."""


@dataclass
class ServerView:
    run_dir: Path
    entries: list[TranscriptEntry]
    metrics: list[dict]
    config: dict = field(default_factory=dict)

    @property
    def server_dir(self) -> Path:
        return self.run_dir / "server"

    @property
    def inbox(self) -> Path:
        return self.server_dir / INBOX

    @property
    def archived(self) -> bool:
        return self.inbox.is_dir()

    @property
    def rounds(self) -> list[int]:
        return sorted({e.round for e in self.entries})

    def senders(self, round_: int) -> list[str]:
        return sorted({e.sender for e in self.entries if e.round == round_})

    def payload(self, entry: TranscriptEntry) -> bytes | None:
        """The archived bytes of ``entry`` (None when not archived); raises
        :class:`AuditInputError` when the archived file does not match the transcript digest."""
        folder = self.inbox / f"round-{entry.round}"
        path = folder / archive_name(entry.sender, entry.stage, entry.digest)
        candidates = [path, *sorted(folder.glob(f"{path.stem}-*.bin"))] if folder.is_dir() else []
        for p in candidates:
            if p.is_file():
                data = p.read_bytes()
                if hashlib.sha256(data).hexdigest() == entry.digest:
                    return data
        if any(p.is_file() for p in candidates):
            raise AuditInputError(f"{path}: archived payload does not match the transcript digest of "
                                  f"round {entry.round} {entry.stage}/{entry.kind} from {entry.sender!r}")
        return None

    def backend_options(self) -> tuple[str, dict]:
        """The secure-sum backend and its options, from the public config (plaintext if absent)."""
        ss = self.config.get("secure_sum", {}) if isinstance(self.config, dict) else {}
        return str(ss.get("backend", "") or self.inferred_backend()), dict(ss.get("options", {}) or {})

    def inferred_backend(self) -> str:
        """The backend the message kinds reveal (independent of the config)."""
        kinds = {e.kind for e in self.entries}
        if "masked" in kinds:
            return "masked"
        if "ciphertexts" in kinds:
            return "ckks"
        if "vector" in kinds:
            return "plaintext"
        return "unknown"


def load_view(run_dir: Path) -> ServerView:
    """Read ``RUN/server/`` (and the public ``RUN/config.json``); never the clients' folders."""
    run_dir = Path(run_dir)
    server = run_dir / "server"
    transcript = server / "transcript.jsonl"
    if not transcript.is_file():
        raise AuditInputError(f"{transcript}: no server transcript; is {run_dir} a secure_fgrpo run directory?")
    try:
        entries = list(read_transcript(transcript))
    except (json.JSONDecodeError, TypeError) as err:
        raise AuditInputError(f"{transcript}: malformed line ({err})") from None
    metrics: list[dict] = []
    mpath = server / "metrics.jsonl"
    if mpath.is_file():
        for i, line in enumerate(mpath.read_text().splitlines()):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise AuditInputError(f"{mpath}: line {i + 1} is not JSON ({err.msg})") from None
                if not isinstance(row, dict):
                    raise AuditInputError(f"{mpath}: line {i + 1} is not a JSON object")
                metrics.append(row)
    config: dict = {}
    cpath = run_dir / "config.json"
    if cpath.is_file():
        try:
            config = json.loads(cpath.read_text())
        except json.JSONDecodeError as err:
            raise AuditInputError(f"{cpath}: not JSON ({err.msg})") from None
    log.info("server view: %d messages, %d metric rows, payloads %s", len(entries), len(metrics),
             "archived" if (server / INBOX).is_dir() else "not archived")
    return ServerView(run_dir, entries, metrics, config)
