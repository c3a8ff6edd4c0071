"""An in-process federation of masked-sum parties, for tests and benchmarks.

Builds the backend, identities and roster under a folder, one client per participant with a
random bounded input (numpy RNG: simulation data, not secrets), and the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..base import Message, SumSpec
from .backend import MaskedBackend, client_state_dir, server_state_dir
from .client import MaskedClient
from .server import MaskedServer


@dataclass
class ListRecorder:
    """Keeps every message the server received (the driver's recorder protocol)."""

    messages: list[Message] = field(default_factory=list)

    def record(self, msg: Message) -> None:
        self.messages.append(msg)


@dataclass
class SimRound:
    backend: MaskedBackend
    spec: SumSpec
    server: MaskedServer
    clients: dict[str, MaskedClient]
    inputs: dict[str, np.ndarray]


def random_input(spec: SumSpec, rng: np.random.Generator, fill: float = 0.999) -> np.ndarray:
    """A vector whose data part has norm ``fill·data_bound`` and a weight in [0, weight_bound]."""
    v = rng.standard_normal(spec.dim)
    v[:-1] *= fill * spec.data_bound / max(float(np.linalg.norm(v[:-1])), 1e-300)
    v[-1] = rng.uniform(0.0, spec.weight_bound)
    return v


def make_spec(n: int, dim: int, threshold: int | None = None, round_: int = 1, seed: int = 0,
              data_bound: float = 1.0, weight_bound: float = 10.0) -> SumSpec:
    names = tuple(f"client-{i:03d}" for i in range(n))
    t = threshold if threshold is not None else max(1, math.ceil(0.66 * n))
    return SumSpec(round=round_, dim=dim, data_bound=data_bound, weight_bound=weight_bound,
                   participants=names, threshold=t, seed=seed)


def make_round(folder: Path, spec: SumSpec, options: dict[str, Any] | None = None,
               rng: np.random.Generator | None = None, backend: MaskedBackend | None = None) -> SimRound:
    """Set up (or reuse) a backend under ``folder`` and make every party of one round."""
    rng = rng or np.random.default_rng(spec.seed)
    if backend is None:
        backend = MaskedBackend(**(options or {}))
        backend.setup(folder, list(spec.participants))
    clients: dict[str, MaskedClient] = {}
    inputs: dict[str, np.ndarray] = {}
    for name in spec.participants:
        c = backend.client(name, spec, client_state_dir(folder, name))
        inputs[name] = random_input(spec, rng)
        c.set_input(inputs[name])
        clients[name] = c  # type: ignore[assignment]
    server = backend.server(spec, server_state_dir(folder))
    return SimRound(backend, spec, server, clients, inputs)  # type: ignore[arg-type]
