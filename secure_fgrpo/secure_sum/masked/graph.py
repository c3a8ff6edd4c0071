"""The neighbour graph of one round: a Harary graph H(n, k) over a random permutation.

A client masks only with its k neighbours and Shamir-shares its two secrets among its *holders*
(itself plus those neighbours), any ``t_k`` of whom recover them; params.py derives k and t_k
from (n, γ, δ, σ, η).

Who draws the permutation: nobody alone, and no client checks more than O(A + k) signatures.
The round digest D (every public parameter; the server picks it) names A *anchors*: the A
participants with the smallest SHA-256(D, name) (:func:`anchors`). The seed is a hash of D and
the anchors' signed key advertisements (:func:`graph_seed`), each made of fresh X25519 keys.

Claim: the server cannot choose the graph, up to the residual below. Proof sketch:
(1) every advertisement signs D, so D is fixed before any round key exists; (2) every client
verifies all A anchors' signatures against the roster and refuses a key book that lacks or alters
one, so the seed is a function of D and the anchors' own advertisements; (3) if one anchor is
honest, its fresh keys are unknown when D is fixed, so the seed (a random oracle's output) is
uniform and independent of who colludes: the permutation is uniform, as params.py's bounds
assume; (4) the server can try many D, but each is a fresh uniform A-subset, all colluders with
probability C(c, A)/C(n, A) ≤ 2^-128 (params.anchor_count): grinding D is infeasible; (5) a
non-anchor advertisement does not enter the seed, so changing or withholding one moves no edge
(a withheld one is a dropout; a changed one fails the signature check of every neighbour that
would use it, params' recovery bound covers the rest); (6) a colluding anchor could sign two
advertisements and the server show different clients different ones: the seed enters the
survivor-set digest every client signs at consistency (context.survivors_digest), and a client
reveals shares only with T signatures on its own digest (2T > n + c), so every revealing honest
client used the same graph. Residual (as before this construction): a colluding anchor that
advertises after the honest anchors can re-draw the seed by trying key pairs, one signature per
try (threat_model/residual_risks.md).

Client cost: A signatures (A ≤ 56 for γ ≤ 0.2 at any n) and k neighbours' signatures, plus
SHA-256 of the n names for the anchors and the ring order (~1 µs each); neighbourhoods are
built on demand (a client needs its own and its holders'), not for all n. Point (6)'s T
acknowledgement checks are the one per-ROUND cost linear in n (~0.1 ms each); no per-PARAMETER
cost grows with n beyond k + 1. Why they stay: params.py's docstring (dropping them exposes inputs;
per-peer quorums need 1.25–2.1× the degree and more signature checks than T below n ≈ k²;
a digest-drawn committee's certificate would need fewer, and is not built).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .params import GraphParams

SEED_DOMAIN = b"secure_fgrpo/masked/v1/graph-seed"
ANCHOR_DOMAIN = b"secure_fgrpo/masked/v1/anchor"


class Ring(Mapping[str, frozenset[str]]):
    """name -> its neighbours on H(n, k) over ``order``, each computed on first use."""

    def __init__(self, order: tuple[str, ...], degree: int) -> None:
        self._order, self._degree = order, degree
        self._pos = {name: i for i, name in enumerate(order)}
        self._cache: dict[str, frozenset[str]] = {}

    def __getitem__(self, name: str) -> frozenset[str]:
        got = self._cache.get(name)
        if got is None:
            i, n, order = self._pos[name], len(self._order), self._order
            if self._degree >= n - 1:
                got = frozenset(b for b in order if b != name)
            else:
                half = self._degree // 2
                got = frozenset(order[(i + d) % n] for d in range(-half, half + 1) if d)
            self._cache[name] = got
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


@dataclass(frozen=True)
class Graph:
    order: tuple[str, ...]  # ring positions
    degree: int
    share_threshold: int
    neighbours: Ring
    seed: bytes  # what drew it: enters the survivor-set digest every client signs

    @property
    def complete(self) -> bool:
        return self.degree == len(self.order) - 1

    def holders(self, name: str) -> frozenset[str]:
        return self.neighbours[name] | {name}


def anchors(participants: tuple[str, ...], digest: bytes, count: int) -> tuple[str, ...]:
    """The ``count`` participants with the smallest SHA-256(domain, D, name), in that order: a
    uniform ``count``-subset for each digest D, so grinding D cannot pick them (params.py)."""
    head = ANCHOR_DOMAIN + len(digest).to_bytes(2, "big") + digest

    def key(name: str) -> bytes:
        return hashlib.sha256(head + name.encode()).digest()
    return tuple(sorted(participants, key=key)[:count])


def graph_seed(digest: bytes, adverts: list[tuple[str, bytes, bytes, bytes]]) -> bytes:
    """SHA-256 over the round's parameter digest and each ``(name, c_pub, s_pub, signature)``,
    in the order given (the caller passes the anchors' in anchor order). Length-prefixed."""
    h = hashlib.sha256(SEED_DOMAIN + len(digest).to_bytes(2, "big") + digest)
    for name, c_pub, s_pub, sig in adverts:
        for part in (name.encode(), c_pub, s_pub, sig):
            h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def ring_order(participants: tuple[str, ...], seed: bytes) -> tuple[str, ...]:
    """A uniformly random permutation given a uniform seed (sort by a keyed hash of the name)."""
    head = SEED_DOMAIN + b"|order|" + seed

    def key(name: str) -> bytes:
        return hashlib.sha256(head + name.encode()).digest()
    return tuple(sorted(participants, key=key))


def build_graph(participants: tuple[str, ...], params: GraphParams, seed: bytes) -> Graph:
    order = ring_order(participants, seed)
    return Graph(order=order, degree=params.degree, share_threshold=params.share_threshold,
                 neighbours=Ring(order, params.degree), seed=seed)
