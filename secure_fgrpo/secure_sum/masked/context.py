"""Everything both sides derive from the public parameters of one round.

The digest of these parameters enters every signature and every HKDF context: a server that
showed different clients different parameters (threshold, graph, scale...) is caught by the
first signature check, and keys of one round are useless in any other.

With distributed integer DP (privacy.client_level.mechanism = "skellam") the round also carries
an :class:`IntegerNoise`: its public parameters enter the digest, and its scale is the
fixed-point scale of data and weight alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..base import SumSpec
from .fixedpoint import FixedPoint
from .graph import Graph, build_graph
from .graph import anchors as pick_anchors
from .params import GraphParams, choose_graph
from .policy import SecurityPolicy
from .prg import PRGS

STAGES = ("advertise", "share", "masked_input", "consistency", "unmask")


@dataclass(frozen=True)
class Params:
    """Backend options that change the protocol (validated by the backend)."""

    modulus_bits: int = 32
    prg: str = "aes-ctr"
    degree: int | None = None
    scale: float | None = None
    max_error: float | None = None
    proposal: SecurityPolicy = field(default_factory=SecurityPolicy)  # the γ, δ, σ, η the server sizes the graph for

    def __post_init__(self) -> None:
        if self.prg not in PRGS:
            raise ValueError(f"secure_sum.options.prg: {self.prg!r} is not one of {', '.join(PRGS)}")


class IntegerNoise(Protocol):
    """Public parameters of integer DP noise added in the fixed-point domain (privacy/client_dp.py
    SkellamNoise): the client rounds at ``scale`` and adds its noise share to its words."""

    scale: float

    def round(self, vector: np.ndarray) -> np.ndarray: ...

    def sample(self, n: int) -> np.ndarray: ...

    def public(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class RoundContext:
    spec: SumSpec
    params: Params
    fixed: FixedPoint
    graph_params: GraphParams
    digest: bytes
    roster: dict[str, Ed25519PublicKey] | None
    noise: IntegerNoise | None = None

    @classmethod
    def build(cls, spec: SumSpec, params: Params, roster: dict[str, Ed25519PublicKey] | None,
              noise: IntegerNoise | None = None) -> RoundContext:
        n = len(spec.participants)
        scale = params.scale
        if noise is not None:
            if scale is not None and scale != noise.scale:
                raise ValueError(f"secure_sum.options.scale = {scale:g} differs from the scale {noise.scale:g} the "
                                 "client-level Skellam noise was calibrated at")
            scale = noise.scale
        fixed = FixedPoint.derive(n, spec.data_bound, spec.weight_bound, params.modulus_bits,
                                  scale, params.max_error)
        prop = params.proposal
        graph = choose_graph(n, spec.threshold, prop.gamma, prop.delta, prop.sigma, prop.eta, params.degree)
        if roster is not None:
            missing = [p for p in spec.participants if p not in roster]
            if missing:
                raise ValueError(f"secure_sum.options.roster has no key for participant(s) {', '.join(missing)}")
        doc = {
            "protocol": "secure_fgrpo/masked/v1", "round": spec.round, "dim": spec.dim,
            "data_bound": float(spec.data_bound).hex(), "weight_bound": float(spec.weight_bound).hex(),
            "participants": list(spec.participants), "threshold": spec.threshold,
            "bits": params.modulus_bits, "prg": params.prg, "degree": graph.degree,
            "share_threshold": graph.share_threshold, "anchors": graph.anchors,
            "data_scale": fixed.data_scale.hex(), "weight_scale": fixed.weight_scale.hex(),
            "signed": roster is not None,
        }
        if noise is not None:
            doc["noise"] = noise.public()
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).digest()
        return cls(spec, params, fixed, graph, digest, roster, noise)

    def build_graph(self, seed: bytes) -> Graph:
        """The round's graph once the anchors' advertisements are in (graph.graph_seed)."""
        return build_graph(self.spec.participants, self.graph_params, seed)

    @cached_property
    def anchors(self) -> tuple[str, ...]:
        """The participants whose advertisements seed the graph (graph.anchors)."""
        return pick_anchors(self.spec.participants, self.digest, self.graph_params.anchors)

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {name: i + 1 for i, name in enumerate(self.spec.participants)}

    @property
    def signed(self) -> bool:
        return self.roster is not None

    def index(self, name: str) -> int:
        """Public Shamir x-coordinate of a participant (1-based)."""
        return self._positions[name]

    def is_participant(self, name: str) -> bool:
        return name in self._positions

    def sign_bytes(self, what: str, *parts: bytes) -> bytes:
        """The exact bytes an identity key signs for ``what``."""
        head = b"secure_fgrpo/masked/v1/sig|" + what.encode() + b"|" + self.spec.round.to_bytes(8, "big")
        return b"|".join([head, self.digest, *[len(p).to_bytes(4, "big") + p for p in parts]])

    def masked_parts(self, sender: str, words: bytes | memoryview,
                     complaints: tuple[tuple[str, bytes], ...]) -> tuple[bytes, ...]:
        """What a client signs with its masked input: its name, SHA-256 of the words, complaints."""
        body = b"".join(len(o.encode()).to_bytes(1, "big") + o.encode() + k for o, k in complaints)
        return sender.encode(), hashlib.sha256(words).digest(), body

    def survivors_digest(self, names: list[str] | tuple[str, ...], graph_seed: bytes) -> bytes:
        """What clients acknowledge: the survivor set and the graph's seed (one graph for every
        client that reveals, even if a colluding anchor signed two advertisements: graph.py)."""
        body = b"\0".join(n.encode() for n in sorted(names))
        return hashlib.sha256(self.sign_bytes("survivors", graph_seed, body)).digest()
