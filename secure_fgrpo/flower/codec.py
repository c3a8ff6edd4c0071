"""Stage 0's payload: the round's public parameters as bytes, one exact encoding.

The server sends them before any secret moves; each node checks them against its own local
policy (policy.py) before it builds its client. Floats travel as hex so both sides derive the
same fixed-point ranges and the same parameter digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..secure_sum.base import SumSpec

VERSION = "secure_fgrpo/flower/setup/v1"


class CodecError(ValueError):
    """Malformed stage-0 bytes; the message names the field."""


@dataclass(frozen=True)
class RoundSetup:
    """What stage 0 carries: the secure sum's spec and the backend options that change the
    protocol (never a path or a secret: each party names its own files)."""

    spec: SumSpec
    backend: str
    options: dict[str, Any]

    def to_bytes(self) -> bytes:
        s = self.spec
        doc = {"version": VERSION, "backend": self.backend, "options": self.options,
               "spec": {"round": s.round, "dim": s.dim, "data_bound": float(s.data_bound).hex(),
                        "weight_bound": float(s.weight_bound).hex(), "participants": list(s.participants),
                        "threshold": s.threshold, "seed": s.seed}}
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> RoundSetup:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CodecError(f"setup: not UTF-8 JSON ({err.__class__.__name__})") from None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise CodecError(f"setup.version: expected {VERSION!r}")
        spec, options, backend = doc.get("spec"), doc.get("options"), doc.get("backend")
        if not isinstance(spec, dict):
            raise CodecError("setup.spec: missing or not an object")
        if not isinstance(options, dict) or not isinstance(backend, str):
            raise CodecError("setup.backend/options: missing or of the wrong type")
        want = {"round": int, "dim": int, "data_bound": str, "weight_bound": str, "participants": list,
                "threshold": int, "seed": int}
        for key, typ in want.items():
            if not isinstance(spec.get(key), typ) or isinstance(spec.get(key), bool):
                raise CodecError(f"setup.spec.{key}: missing or not a {typ.__name__}")
        if set(spec) != set(want):
            raise CodecError(f"setup.spec: unexpected field(s) {sorted(set(spec) - set(want))}")
        if not all(isinstance(p, str) and p for p in spec["participants"]):
            raise CodecError("setup.spec.participants: every entry must be a non-empty string")
        try:
            bounds = float.fromhex(spec["data_bound"]), float.fromhex(spec["weight_bound"])
            parsed = SumSpec(round=spec["round"], dim=spec["dim"], data_bound=bounds[0],
                             weight_bound=bounds[1], participants=tuple(spec["participants"]),
                             threshold=spec["threshold"], seed=spec["seed"])
        except ValueError as err:
            raise CodecError(f"setup.spec: {err}") from None
        return cls(parsed, backend, options)
