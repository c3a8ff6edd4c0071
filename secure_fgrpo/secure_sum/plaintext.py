"""Plaintext sum: the server receives every vector. The baseline, and the attack target."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import SERVER, Backend, Message, ProtocolError, SumClient, SumOutcome, SumServer, SumSpec

STAGE = "input"


class PlaintextClient(SumClient):
    def set_input(self, vector: np.ndarray) -> None:
        self._vector = self.spec.check_input(vector, self.name).astype("<f8")

    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        if stage != STAGE:
            raise ProtocolError(SERVER, stage, "plaintext backend has a single stage 'input'")
        return Message(self.spec.round, stage, self.name, SERVER, "vector", self._vector.tobytes())


class PlaintextServer(SumServer):
    stages = (STAGE,)

    def __init__(self, spec: SumSpec) -> None:
        super().__init__(spec)
        self._total = np.zeros(spec.dim, dtype=np.float64)
        self._contributors: list[str] = []

    def process(self, stage: str, inbound: dict[str, Message]) -> dict[str, Message]:
        # Validate every message before adding any, so a rejected sender leaves no trace.
        vectors = {}
        for sender, msg in sorted(inbound.items()):
            if len(msg.payload) != 8 * self.spec.dim:
                raise ProtocolError(
                    sender, stage, f"payload has {len(msg.payload)} bytes, expected {8 * self.spec.dim}"
                )
            if sender in self._contributors:
                raise ProtocolError(sender, stage, "second input in the same round (replay)")
            vec = np.frombuffer(msg.payload, dtype="<f8")
            try:
                self.spec.check_input(vec, sender)
            except ValueError as err:
                raise ProtocolError(sender, stage, str(err)) from None
            vectors[sender] = vec
        for sender, vec in vectors.items():
            self._total += vec
            self._contributors.append(sender)
        return {}

    def outcome(self) -> SumOutcome:
        return SumOutcome(contributors=tuple(self._contributors), total=self._total.copy())


class PlaintextBackend(Backend):
    name = "plaintext"

    def server(self, spec: SumSpec, state_dir: Path) -> SumServer:
        return PlaintextServer(spec)

    def client(self, name: str, spec: SumSpec, state_dir: Path) -> SumClient:
        return PlaintextClient(name, spec)
