"""Stage 0: a round's public parameters as bytes, one exact encoding, for any transport.

The server sends them before any secret moves; each party checks them against its own local
policy (party.py, flower/policy.py) before it trains or builds its secure-sum client. They are
the sum spec, the backend and the protocol options it may set, the client-level noise plan's
public parameters, the version and digest of the global vector the party will train from, and
the digest of the federation config. Floats travel as hex so both sides derive the same
fixed-point ranges. The global vector itself may ride after the JSON (``pack``/``unpack``).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..configio import to_dict
from ..secure_sum.base import SumSpec

VERSION = "secure_fgrpo/setup/v2"
_LEN = struct.Struct(">I")


class CodecError(ValueError):
    """Malformed stage-0 bytes; the message names the field."""


def vector_digest(vector: np.ndarray) -> str:
    """sha256 of the global vector as float32 bytes: what a party checks it trains from."""
    return hashlib.sha256(np.ascontiguousarray(vector, dtype=np.float32).tobytes()).hexdigest()


def config_digest(cfg: Any) -> str:
    """sha256 of the federation config (a RunConfig) with machine-local file paths left out:
    each institution names its own data file, everything else must agree."""
    doc = to_dict(cfg)
    for c in doc.get("clients", []):
        for key in ("data", "eval_data"):
            if c.get(key):
                c[key] = "own file"
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def noise_public(noise: Any) -> dict[str, str]:
    """A round's client-level noise as public strings (privacy/client_dp.py: Skellam's own
    ``public()``, or every field of the Gaussian ``ClientNoise`` as exact hex)."""
    if hasattr(noise, "public"):
        return dict(noise.public())
    return {"mechanism": "gaussian", **{k: float(v).hex() for k, v in sorted(asdict(noise).items())}}


@dataclass(frozen=True)
class RoundSetup:
    """What stage 0 carries (never a path or a secret: each party names its own files).
    ``model_version``: the round whose global vector the party trains from (0 = initial)."""

    spec: SumSpec
    backend: str
    options: dict[str, Any]
    noise: dict[str, str] | None = None  # the client-level noise's public parameters
    model_version: int = 0
    global_digest: str = ""
    config_digest: str = ""

    def to_bytes(self) -> bytes:
        s = self.spec
        doc = {"version": VERSION, "backend": self.backend, "options": self.options, "noise": self.noise,
               "model_version": self.model_version, "global_digest": self.global_digest,
               "config_digest": self.config_digest,
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
        options, backend, noise = doc.get("options"), doc.get("backend"), doc.get("noise")
        if not isinstance(options, dict) or not isinstance(backend, str):
            raise CodecError("setup.backend/options: missing or of the wrong type")
        if noise is not None and not (isinstance(noise, dict) and all(isinstance(v, str) for v in noise.values())):
            raise CodecError("setup.noise: must be null or an object of strings")
        version = doc.get("model_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise CodecError("setup.model_version: missing or not a round number")
        for key in ("global_digest", "config_digest"):
            if not isinstance(doc.get(key), str):
                raise CodecError(f"setup.{key}: missing or not a string")
        return cls(_spec(doc.get("spec")), backend, options, noise, version, doc["global_digest"],
                   doc["config_digest"])

    def pack(self, vector: np.ndarray | None = None) -> bytes:
        """Stage 0's payload: length-prefixed JSON, then the global vector (float32) if sent."""
        head = self.to_bytes()
        body = b"" if vector is None else np.ascontiguousarray(vector, dtype="<f4").tobytes()
        return _LEN.pack(len(head)) + head + body

    @classmethod
    def unpack(cls, raw: bytes) -> tuple[RoundSetup, np.ndarray | None]:
        """The setup and the global vector (None when the server did not send one); the vector's
        length and digest are checked against the setup here, before anyone trains from it."""
        if len(raw) < _LEN.size or _LEN.unpack_from(raw)[0] > len(raw) - _LEN.size:
            raise CodecError("setup: payload shorter than its length prefix")
        n = _LEN.unpack_from(raw)[0]
        setup = cls.from_bytes(raw[_LEN.size:_LEN.size + n])
        body = raw[_LEN.size + n:]
        if not body:
            return setup, None
        if len(body) != 4 * (setup.spec.dim - 1):
            raise CodecError(f"setup.global_vector: {len(body)} bytes, expected 4 x {setup.spec.dim - 1}")
        vector = np.frombuffer(body, dtype="<f4").astype(np.float32)
        if vector_digest(vector) != setup.global_digest:
            raise CodecError("setup.global_vector: does not match setup.global_digest")
        return setup, vector


def _spec(spec: Any) -> SumSpec:
    if not isinstance(spec, dict):
        raise CodecError("setup.spec: missing or not an object")
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
        return SumSpec(round=spec["round"], dim=spec["dim"], data_bound=bounds[0], weight_bound=bounds[1],
                       participants=tuple(spec["participants"]), threshold=spec["threshold"], seed=spec["seed"])
    except ValueError as err:
        raise CodecError(f"setup.spec: {err}") from None
