"""How a protocol message rides in a Flower Message: one ConfigRecord, payload as bytes.

Sender and recipient never travel: Flower's authenticated node id says who sent a reply, and
the server maps node ids to names itself. A node that leaves a round says why in ``withdrew``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord, RecordDict

RECORD = "sfg"
PREFIX = "query."


def message_type(stage: str) -> str:
    """One Flower message type per protocol stage: ``query.<stage>``."""
    return PREFIX + stage


@dataclass(frozen=True)
class Envelope:
    round: int
    stage: str
    kind: str = ""
    payload: bytes = b""
    withdrew: str = ""
    seconds: float = 0.0  # the node's own compute for this stage (training + secure sum at setup)
    train_seconds: float = 0.0  # local GRPO (setup only)

    def to_content(self) -> RecordDict:
        rec = ConfigRecord({"round": self.round, "stage": self.stage, "kind": self.kind,
                            "payload": self.payload, "withdrew": self.withdrew,
                            "seconds": float(self.seconds), "train_seconds": float(self.train_seconds)})
        return RecordDict({RECORD: rec})

    @classmethod
    def from_content(cls, content: RecordDict, where: str) -> Envelope:
        rec = content.get(RECORD) if RECORD in content else None
        if not isinstance(rec, ConfigRecord):
            raise ValueError(f"{where}: message has no {RECORD!r} config record")
        want = {"round": int, "stage": str, "kind": str, "payload": bytes, "withdrew": str, "seconds": float,
                "train_seconds": float}
        for key, typ in want.items():
            if not isinstance(rec.get(key), typ) or isinstance(rec.get(key), bool):
                raise ValueError(f"{where}: field {key!r} missing or not {typ.__name__}")
        v: dict[str, Any] = {key: rec[key] for key in want}  # each checked above
        return cls(v["round"], v["stage"], v["kind"], bytes(v["payload"]), v["withdrew"], v["seconds"],
                   v["train_seconds"])
