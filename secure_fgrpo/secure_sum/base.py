"""The secure-sum interface: every aggregation rule is Σ e_i·Δ_i / Σ e_i, so the server only
ever needs a secure sum of the vectors ``[e_i·Δ_i, e_i]``.

A backend is a pair of transport-agnostic state machines. The server drives a fixed list of
stages; in each stage every live client may send one message, the server consumes all of them
and may reply to each client. Clients can vanish after any stage. What the server is allowed to
know at the end is exactly :class:`SumOutcome`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SERVER = "server"


class ProtocolError(Exception):
    """A message was rejected. Always names the sender and the stage; never carries secrets."""

    def __init__(self, sender: str, stage: str, reason: str) -> None:
        super().__init__(f"rejected message from {sender!r} at stage {stage!r}: {reason}")
        self.sender = sender
        self.stage = stage
        self.reason = reason


class RoundAborted(Exception):
    """The round cannot complete (e.g. fewer survivors than the threshold); nothing is applied."""


@dataclass(frozen=True)
class Message:
    """One protocol message. ``payload`` is opaque bytes: the only thing that travels."""

    round: int
    stage: str
    sender: str
    recipient: str
    kind: str
    payload: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True)
class SumSpec:
    """Public parameters of one secure sum, broadcast by the server before the round.

    The vector each client contributes has ``dim`` coordinates: the data part ``e_i·Δ_i``
    (``dim - 1`` floats, L2 norm at most ``data_bound``) followed by the weight ``e_i``
    (in ``[0, weight_bound]``). Fixed-point backends derive their ranges from these bounds.
    """

    round: int
    dim: int
    data_bound: float
    weight_bound: float
    participants: tuple[str, ...]
    threshold: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim < 2:
            raise ValueError(f"SumSpec.dim must be >= 2 (data + weight), got {self.dim}")
        if not (self.data_bound > 0 and self.weight_bound > 0):
            raise ValueError("SumSpec.data_bound and SumSpec.weight_bound must be > 0")
        if len(set(self.participants)) != len(self.participants):
            raise ValueError("SumSpec.participants has duplicates")
        if not 1 <= self.threshold <= len(self.participants):
            raise ValueError(
                f"SumSpec.threshold must be in [1, {len(self.participants)}], got {self.threshold}"
            )

    def check_input(self, vector: np.ndarray, sender: str) -> None:
        """Refuse a client input outside the declared bounds (fixed point would wrap)."""
        if vector.shape != (self.dim,):
            raise ValueError(f"{sender}: input has shape {vector.shape}, expected ({self.dim},)")
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"{sender}: input has non-finite values")
        norm = float(np.linalg.norm(vector[:-1]))
        if norm > self.data_bound * (1 + 1e-9):
            raise ValueError(f"{sender}: data norm {norm:.6g} exceeds data_bound {self.data_bound:.6g}")
        w = float(vector[-1])
        if not 0.0 <= w <= self.weight_bound * (1 + 1e-9):
            raise ValueError(f"{sender}: weight outside [0, weight_bound={self.weight_bound:.6g}]")


@dataclass
class SumOutcome:
    """What the round produced. ``total`` is the server's view of Σ vectors (None when the
    backend keeps even the aggregate from the server); ``contributors`` is the exact set whose
    inputs are inside the sum (numerator and denominator alike)."""

    contributors: tuple[str, ...]
    total: np.ndarray | None
    aborted: bool = False
    reason: str = ""
    stats: dict[str, float] = field(default_factory=dict)


class SumClient(ABC):
    """One client's side of one round. Holds the client's secrets; never logs them."""

    def __init__(self, name: str, spec: SumSpec) -> None:
        self.name = name
        self.spec = spec

    @abstractmethod
    def set_input(self, vector: np.ndarray) -> None:
        """The client's contribution ``[e_i·Δ_i, e_i]`` (float64)."""

    @abstractmethod
    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        """Produce this client's message for ``stage`` given the server's last reply to it."""

    def result(self) -> np.ndarray | None:
        """The sum, when the backend delivers it to clients (server-blind modes)."""
        return None


class SumServer(ABC):
    """The server's side of one round. Sees only what :meth:`process` receives."""

    stages: tuple[str, ...] = ()

    def __init__(self, spec: SumSpec) -> None:
        self.spec = spec

    @abstractmethod
    def process(self, stage: str, inbound: dict[str, Message]) -> dict[str, Message]:
        """Consume the stage's messages (keyed by sender); return replies keyed by recipient.

        Raise :class:`ProtocolError` for a bad message *before changing any state*: the driver
        drops that sender and calls ``process`` again with the rest. Raise
        :class:`RoundAborted` when the round cannot complete.
        """

    @abstractmethod
    def outcome(self) -> SumOutcome:
        """Call after the last stage."""


def server_state_dir(run_dir: Path) -> Path:
    """Where the server's backend state lives; the runner passes it as ``state_dir``."""
    return Path(run_dir) / "server" / "keys"


def client_state_dir(run_dir: Path, name: str) -> Path:
    """Where a client's keys live (0700 folder, 0600 files); never read by the server."""
    return Path(run_dir) / "clients" / name / "keys"


class Backend(ABC):
    """A secure-sum backend: makes both sides of a round. The federation only sees this.

    ``state_dir`` is the party's own private folder (long-term keys live there, 0600).
    """

    name: str = ""

    @property
    def server_learns_sum(self) -> bool:
        """False when the aggregate goes back to the clients only (then the global model
        and its update must live with the clients, never at the server)."""
        return True

    @property
    def weights_on_server(self) -> bool:
        """True when clients send ``[n^α·Δ, n^α, g]`` and the server applies exp(g/τ) itself."""
        return False

    @abstractmethod
    def server(self, spec: SumSpec, state_dir: Path) -> SumServer: ...

    @abstractmethod
    def client(self, name: str, spec: SumSpec, state_dir: Path) -> SumClient: ...

    def setup(self, run_dir: Path, clients: list[str]) -> None:
        """One-time federation set-up (e.g. key generation). Default: nothing to do."""
