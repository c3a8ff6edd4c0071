"""The neighbour graph of one round: a Harary graph H(n, k) over a random permutation.

A client masks only with its k neighbours and Shamir-shares its two secrets among its *holders*
(itself plus those neighbours), any ``t_k`` of whom recover them; params.py derives k and t_k
from (n, γ, δ, σ, η).

Who draws the permutation: nobody alone. Its seed is a hash of *every* participant's signed
key advertisement of the round, in roster order (:func:`graph_seed`), so the server cannot pick
it (``SumSpec.seed`` plays no part) and each client's fresh keys enter it. Every participant must
advertise (server.py aborts otherwise), so a server cannot steer the seed by hiding some
advertisements from some clients. Residual: a client that colludes with the server and advertises
last can try many key pairs (threat_model/residual_risks.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .params import GraphParams

SEED_DOMAIN = b"secure_fgrpo/masked/v1/graph-seed"


@dataclass(frozen=True)
class Graph:
    order: tuple[str, ...]  # ring positions
    degree: int
    share_threshold: int
    neighbours: dict[str, frozenset[str]]

    @property
    def complete(self) -> bool:
        return self.degree == len(self.order) - 1

    def holders(self, name: str) -> frozenset[str]:
        return self.neighbours[name] | {name}


def graph_seed(digest: bytes, adverts: list[tuple[str, bytes, bytes, bytes]]) -> bytes:
    """SHA-256 over the round's parameter digest and every ``(name, c_pub, s_pub, signature)``,
    in the order given (the caller passes roster order). Length-prefixed: unambiguous."""
    h = hashlib.sha256(SEED_DOMAIN + len(digest).to_bytes(2, "big") + digest)
    for name, c_pub, s_pub, sig in adverts:
        for part in (name.encode(), c_pub, s_pub, sig):
            h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def ring_order(participants: tuple[str, ...], seed: bytes) -> tuple[str, ...]:
    """A uniformly random permutation given a uniform seed (sort by a keyed hash of the name)."""
    def key(name: str) -> bytes:
        return hashlib.sha256(SEED_DOMAIN + b"|order|" + seed + name.encode()).digest()
    return tuple(sorted(participants, key=key))


def build_graph(participants: tuple[str, ...], params: GraphParams, seed: bytes) -> Graph:
    n, k = len(participants), params.degree
    order = ring_order(participants, seed)
    if k >= n - 1:
        nbrs = {a: frozenset(b for b in order if b != a) for a in order}
    else:
        half = k // 2
        nbrs = {a: frozenset(order[(i + d) % n] for d in range(-half, half + 1) if d)
                for i, a in enumerate(order)}
    return Graph(order=order, degree=k, share_threshold=params.share_threshold, neighbours=nbrs)
