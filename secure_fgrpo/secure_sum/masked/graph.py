"""The k-regular neighbour graph of SecAgg+ and its share threshold.

A client masks only with its k neighbours and Shamir-shares its two secrets among its
*holders*: itself plus those neighbours (k + 1 holders), any ``t_k`` of whom recover them.

Degree rule (derived from n and the round threshold t, so it holds for every dropout
pattern, not just random ones): at most ``D = n - t`` clients drop. A holder set then
keeps at least ``k + 1 - D`` members, so ``t_k = k + 1 - D`` always allows recovery. Privacy
needs ``2·t_k > k + 1`` (an honest holder reveals one share per peer, so the server cannot
assemble both the self-mask seed and the mask key of one client from two disjoint groups),
i.e. ``k >= 2D``. We take the smallest such even k (a Harary ring) and fall back to the
complete graph (k = n - 1, t_k = t) when 2D reaches n - 1; there ``2t > n`` is required.
The ring is laid out in a public pseudo-random order (hash of seed, round and name).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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


def choose_degree(n: int, t: int, degree: int | None = None) -> tuple[int, int]:
    """``(k, t_k)`` for n participants and round threshold t; ValueError says why not."""
    if n < 2:
        raise ValueError(f"secure sum needs at least 2 participants, got {n}")
    if not 1 <= t <= n:
        raise ValueError(f"threshold {t} must be in [1, {n}]")
    drops = n - t
    if degree is None:
        k = max(2, 2 * drops)
        if k >= n - 1:
            k = n - 1
        t_k = k + 1 - drops
    else:
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ValueError(f"secure_sum.degree must be an integer >= 1, got {degree!r}")
        if degree > n - 1:
            raise ValueError(f"secure_sum.degree={degree} exceeds n - 1 = {n - 1} for {n} participants")
        if degree < n - 1 and degree % 2:
            raise ValueError(f"secure_sum.degree={degree}: a ring graph needs an even degree (or n - 1)")
        k = degree
        t_k = (k + 1) // 2 + 1  # smallest strict majority of the k + 1 holders
    if 2 * t_k <= k + 1:
        raise ValueError(
            f"threshold t={t} of n={n} tolerates {drops} dropout(s); recovery would need only {t_k} "
            f"of each client's {k + 1} share holders, so a server could collect both of a client's "
            f"secrets from two disjoint halves. Raise the threshold above n/2 (t >= {n // 2 + 1})")
    if t_k > k + 1:
        raise ValueError(f"share threshold {t_k} exceeds the {k + 1} holders")
    return k, t_k


def ring_order(participants: tuple[str, ...], seed: int, round_: int) -> tuple[str, ...]:
    """Public, deterministic shuffle: nobody chooses their neighbours."""
    def key(name: str) -> bytes:
        return hashlib.sha256(f"secure_fgrpo/masked/graph|{seed}|{round_}|{name}".encode()).digest()
    return tuple(sorted(participants, key=key))


def build_graph(participants: tuple[str, ...], threshold: int, seed: int, round_: int,
                degree: int | None = None) -> Graph:
    n = len(participants)
    k, t_k = choose_degree(n, threshold, degree)
    order = ring_order(participants, seed, round_)
    if k == n - 1:
        nbrs = {a: frozenset(b for b in order if b != a) for a in order}
    else:
        half = k // 2
        nbrs = {a: frozenset(order[(i + d) % n] for d in range(-half, half + 1) if d)
                for i, a in enumerate(order)}
    return Graph(order=order, degree=k, share_threshold=t_k, neighbours=nbrs)
