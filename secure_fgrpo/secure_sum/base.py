"""The secure-sum interface: every aggregation rule is Σ e_i·Δ_i / Σ e_i, so the server only
ever needs a secure sum of the vectors ``[e_i·Δ_i, e_i]``.

A backend is a pair of transport-agnostic state machines. The server drives a fixed list of
stages; in each stage every live client may send one message, the server consumes all of them
and may reply to each client. Clients can vanish after any stage. What the server is allowed to
know at the end is exactly :class:`SumOutcome`.
"""

from __future__ import annotations

import hashlib
import math
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
    seed: int = 0  # public; the masked graph ignores it (drawn from every advertisement, graph.py)

    def __post_init__(self) -> None:
        if self.dim < 2:
            raise ValueError(f"SumSpec.dim must be >= 2 (data + weight), got {self.dim}")
        for key in ("data_bound", "weight_bound"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"SumSpec.{key} must be a finite number > 0, got {value!r}")
        if len(set(self.participants)) != len(self.participants):
            raise ValueError("SumSpec.participants has duplicates")
        if not 1 <= self.threshold <= len(self.participants):
            raise ValueError(
                f"SumSpec.threshold must be in [1, {len(self.participants)}], got {self.threshold}"
            )

    def check_input(self, vector: np.ndarray | list[float], sender: str) -> np.ndarray:
        """Refuse a client input outside the declared bounds (fixed point would wrap); return it
        as float64. A complex, boolean or non-numeric input is refused, never silently cast."""
        raw = np.asarray(vector)
        if raw.dtype.kind not in "iuf":
            raise ValueError(f"{sender}: input has dtype {raw.dtype}; expected real numbers "
                             f"(a complex part would be dropped)")
        vector = raw.astype(np.float64, copy=False)
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
        return vector

    def check_aggregate(self, total: np.ndarray, contributors: int, tolerance: float = 0.0) -> None:
        """Refuse a sum that no ``contributors`` inputs inside the bounds could produce:
        Σe outside [0, m·weight_bound] or ‖Σ eΔ‖ above m·data_bound (triangle inequality).

        This is the server's only defence against a client that skips its own checks; a lie
        *inside* the bounds passes (residual risk, threat_model/residual_risks.md). ``tolerance``
        is the backend's per-coordinate error bound (quantisation); a relative 1e-4 is added
        for approximate arithmetic (CKKS)."""
        m = int(contributors)
        w_hi = m * self.weight_bound
        w_tol = tolerance + 1e-4 * max(w_hi, 1.0)
        weight = float(total[-1])
        if not (math.isfinite(weight) and -w_tol <= weight <= w_hi + w_tol):
            raise ValueError(f"aggregate sum of weights {weight:.6g} is outside [0, {w_hi:.6g}] "
                             f"({m} contributors x weight_bound {self.weight_bound:.6g}): no honest "
                             f"inputs give this; refusing to apply it")
        d_hi = m * self.data_bound
        d_tol = tolerance * math.sqrt(self.dim - 1) + 1e-4 * max(d_hi, 1.0)
        norm = float(np.linalg.norm(total[:-1]))
        if not (math.isfinite(norm) and norm <= d_hi + d_tol):
            raise ValueError(f"aggregate data norm {norm:.6g} exceeds {d_hi:.6g} ({m} contributors x "
                             f"data_bound {self.data_bound:.6g}): no honest inputs give this; "
                             f"refusing to apply it")


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
    blamed: dict[str, str] = field(default_factory=dict)  # provably misbehaving client -> evidence


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

    def blamed(self) -> dict[str, str]:
        """Clients this round proved misbehaving (signed evidence), with the reason; the
        federation excludes them from later rounds. Also read when the round aborts."""
        return {}


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

    def setup(self, run_dir: Path, clients: list[str]) -> None:  # noqa: B027 (optional hook, not abstract)
        """One-time federation set-up (e.g. key generation). Default: nothing to do."""
