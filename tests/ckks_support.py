"""Shared helpers for the test_ckks_* files: a federation in a temp dir, a full-message
recorder, and a secret-key leak detector with a positive control."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from secure_fgrpo.secure_sum import DropSchedule, Message, SumOutcome, SumSpec, make_backend, run_secure_sum
from secure_fgrpo.secure_sum.ckks import client_dir, server_dir, server_weight_input
from secure_fgrpo.secure_sum.ckks.keys import load_keys
from secure_fgrpo.secure_sum.ckks.sealio import SealIO


class FullRecorder:
    """Keeps every message the server received, payload included (the test's eyes)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def record(self, msg: Message) -> None:
        self.messages.append(msg)


@dataclass
class Fed:
    run_dir: Path
    backend: Any
    names: list[str]
    inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def spec(self, dim: int, rnd: int = 0, threshold: int = 1, data_bound: float = 10.0,
             weight_bound: float = 50.0) -> SumSpec:
        return SumSpec(round=rnd, dim=dim, data_bound=data_bound, weight_bound=weight_bound,
                       participants=tuple(self.names), threshold=threshold)

    def run(self, spec: SumSpec, vectors: dict[str, np.ndarray], drops: DropSchedule | None = None,
            recorder: FullRecorder | None = None) -> tuple[SumOutcome, Any, dict[str, Any]]:
        clients = {n: self.backend.client(n, spec, client_dir(self.run_dir, n)) for n in self.names}
        for n, v in vectors.items():
            clients[n].set_input(v)
        server = self.backend.server(spec, server_dir(self.run_dir))
        out = run_secure_sum(server, clients, recorder or FullRecorder(), drops)
        return out, server, clients


def make_fed(tmp: Path, options: dict[str, Any], n: int = 3) -> Fed:
    names = [f"h{i}" for i in range(n)]
    backend = make_backend("ckks", options)
    backend.setup(tmp, names)
    return Fed(tmp, backend, names)


def random_inputs(names: list[str], dim: int, seed: int, data_bound: float = 10.0,
                  weight_bound: float = 50.0) -> dict[str, np.ndarray]:
    """``[e·Δ, e]`` with ||e·Δ|| and e inside the bounds (non-secret simulation RNG)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in names:
        e = rng.uniform(0.1, 1.0) * weight_bound
        d = rng.normal(size=dim - 1)
        d *= rng.uniform(0.1, 1.0) * data_bound / np.linalg.norm(d)
        out[n] = np.concatenate([d, [e]])
    return out


def gain_inputs(names: list[str], dim: int, seed: int, gain_clip: float, tau: float,
                data_bound: float = 10.0, weight_bound: float = 50.0) -> tuple[dict, dict]:
    """(server-weight inputs ``[n^a·Δ, n^a, g]``, the client-side ``[e·Δ, e]`` they stand for)."""
    rng = np.random.default_rng(seed)
    sw, cw = {}, {}
    for n in names:
        g = rng.uniform(-gain_clip, gain_clip)
        factor = np.exp(g / tau)
        base = rng.uniform(0.1, 1.0) * weight_bound / np.exp(gain_clip / tau)
        d = rng.normal(size=dim - 1)
        d *= rng.uniform(0.1, 1.0) * data_bound / np.linalg.norm(d) / np.exp(gain_clip / tau) / base
        sw[n] = server_weight_input(base * d, base, g)
        cw[n] = np.concatenate([factor * base * d, [factor * base]])
    return sw, cw


def resign(fed: Fed, spec: SumSpec, sender: str, payload: bytes) -> bytes:
    """``payload`` signed by ``sender``'s identity for ``spec``'s round: what a malicious client
    (who holds its own key) can send. Needs a payload whose signature flag is set."""
    from secure_fgrpo.secure_sum.ckks.binding import body_digest
    from secure_fgrpo.secure_sum.masked.keys import load_identity

    client = fed.backend.client(sender, spec, client_dir(fed.run_dir, sender))
    return payload[:-64] + client.binding.sign(load_identity(client_dir(fed.run_dir, sender)), sender,
                                               body_digest(payload))


class SecretKeyDetector:
    """Windows of the secret key, both as SEAL serialises it (how a leaked context would carry
    it) and as raw coefficients (how a hand-rolled leak would carry it)."""

    WINDOW = 64

    def __init__(self, client_state: Path, params: Any) -> None:
        keys = load_keys(client_state, params, secret=True, relin=False)
        sk = keys.secret_key
        serialised = SealIO().dump(sk)[16:]  # skip SEAL's generic header
        coeffs = sk.data()
        raw = struct.pack(f"<{coeffs.coeff_count()}Q", *(coeffs[i] for i in range(coeffs.coeff_count())))
        step = self.WINDOW * 4
        self.windows = [serialised[i:i + self.WINDOW] for i in range(0, len(serialised) - self.WINDOW, step)]
        self.windows += [raw[i:i + self.WINDOW] for i in range(0, len(raw) - self.WINDOW, step)]
        self.serialised, self.raw = serialised, raw
        assert len(self.windows) > 20

    def leaks(self, blob: bytes) -> bool:
        return any(w in blob for w in self.windows)
