"""Degree and share threshold of the SecAgg+ neighbour graph, from (n, γ, δ, σ, η).

Construction (Bell et al., CCS 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic
Overhead"): a Harary graph H(n, k) (a ring where each client is joined to the k/2 nearest on
either side) laid over a uniformly random permutation of the participants. A client Shamir-shares
its two secrets among its holders (itself + its k neighbours), any ``t_k`` of whom recover them.
Under the random permutation a client's neighbourhood is a uniform k-subset of the other n - 1.

Derivation (our protocol's conditions; the tails are exact hypergeometric, computed in integer
arithmetic, union-bounded over the n clients, as in Bell et al.'s analysis):

* privacy, γ: c = ⌊γ·n⌋ colluding clients (chosen before the permutation is drawn). Honest
  holders agree on one survivor set (2T > n + c, policy.py) and reveal one share per peer for it.
  The best attack keeps the victim and its colluding neighbours in the set and calls its honest
  neighbours "dropped" (their mask keys are then revealed); the victim's seed still needs t_k
  holders that answer, and only the victim and its X colluding neighbours do. So the server and
  the colluders recover a client's input iff X ≥ t_k - 1 of its neighbours collude
  (tests/test_masked_collusion.py), X ~ Hypergeom(n - 1, c, k):  n · P[X ≥ t_k - 1] ≤ 2^-σ.
* recovery, δ: d = ⌊δ·n⌋ clients drop at random; a client's input is recoverable while at least
  t_k of its holders survive, Y ~ Hypergeom(n - 1, d, k) dropped neighbours:
  n · P[Y > k + 1 - t_k] ≤ 2^-η.

Why the survivor set needs T acknowledgements (the one per-round cost linear in n) and nothing
O(k) replaces it: (i) without agreement the server tells the holders of each honest neighbour w
of a victim v "w dropped" (they reveal w's mask key) while w, alive, reveals v's self-mask share:
v's input is exposed whatever k and t_k. Here an honest client refuses a survivor list that omits
it and reveals only for the list T signers share (2T > n + c). (ii) Per-peer quorums (each of
the k + 1 holders of a peer certifies its status; a client reveals only with a quorum certificate
for itself and for each peer it reveals about) are sound only if 2q > k + 1 + X and q ≤ k + 1 − Y
w.h.p.: :func:`peer_quorum_graph` gives k = 40 / 76 / 128 / 158 at n = 100 / 200 / 500 / 1000
(today 32 / 50 / 66 / 74; γ = 0.2, δ = 0.1), so every per-parameter stage costs 1.25–2.1× more,
and a client checks (k + 1)·q signatures, 1,271 / 4,389 / 12,126 / 18,444 against T = 66 / 132 /
330 / 660: more, not fewer, until n exceeds ~k². (iii) Open, not built: a committee of the A_c
participants with the smallest SHA-256(D, name) certifying the set with q signatures, two
q-quorums meeting in an honest member even against a server grinding D (2^-128), q surviving the
dropouts (2^-η): :func:`committee_quorum` gives (A_c, q) = (41, 31) / (81, 61) / (157, 122) /
(204, 159) / (271, 211) at n = 100 / 200 / 500 / 1000 / 10000, i.e. q checks instead of T = 66 /
132 / 330 / 660 / 6600. It looks sound (the same intersection argument inside the committee; every
revealer still checks the set itself) but changes the consistency stage: it needs its own proof
and split-view / equivocation tests before it replaces the acknowledgements.

For each even k from 2 upwards take the largest t_k meeting the recovery bound (larger t_k only
helps privacy); the first k whose privacy bound holds is the answer. Up to ``COMPLETE_UP_TO``
clients, or when no k < n - 1 qualifies, the graph is complete (k = n - 1, t_k = T): there the
bounds are deterministic (c ≤ T - 2: at least two honest inputs in any sum the server learns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

COMPLETE_UP_TO = 10  # below this many participants the complete graph costs little
SIGMA = 40  # statistical security (privacy), bits
ETA = 30  # correctness (recovery), bits
ANCHOR_BITS = 128  # grinding the round digest until every anchor colludes: ≥ 2^128 tries


@dataclass(frozen=True)
class GraphParams:
    degree: int
    share_threshold: int
    privacy_failure: float  # bound on P[some client's input is exposed] at the γ it was chosen for
    recovery_failure: float  # bound on P[some input cannot be unmasked] at the δ it was chosen for
    anchors: int = 0  # participants whose advertisements seed the graph (graph.py); 0: complete graph

    def complete(self, n: int) -> bool:
        return self.degree == n - 1


def counts(n: int, gamma: float, delta: float) -> tuple[int, int]:
    """(colluders c, dropouts d) for fractions γ, δ of n participants."""
    return math.floor(gamma * n + 1e-9), math.floor(delta * n + 1e-9)


@lru_cache(maxsize=65536)
def hypergeom_tail(pop: int, good: int, draws: int, at_least: int) -> float:
    """P[X >= at_least] for X ~ Hypergeom(pop, good, draws), in exact integer arithmetic (no
    floating-point cancellation however small the tail; scipy's ``hypergeom.sf`` agrees, see
    tests/test_masked_graph.py, but importing scipy.stats costs seconds per process)."""
    lo = max(at_least, 0)
    hi = min(good, draws)
    if lo > hi:
        return 0.0
    num = sum(math.comb(good, x) * math.comb(pop - good, draws - x) for x in range(lo, hi + 1))
    return float(Fraction(num, math.comb(pop, draws)))


@lru_cache(maxsize=4096)
def all_anchors_collude(n: int, anchors: int, corrupt: int) -> float:
    """P[a uniformly random ``anchors``-subset of n lies inside the c colluders] = C(c, A) / C(n, A):
    the chance that one candidate round digest hands the server every anchor (graph.py)."""
    c = min(corrupt, n)
    if anchors > c:
        return 0.0
    return float(Fraction(math.comb(c, anchors), math.comb(n, anchors)))


@lru_cache(maxsize=4096)
def anchor_count(n: int, corrupt: int, bits: int = ANCHOR_BITS) -> int:
    """Smallest A with C(c, A)/C(n, A) ≤ 2^-bits; at most c + 1 (then it is 0), so it stops
    growing with n for a fixed γ (about bits / log2(1/γ): 56 at γ = 0.2)."""
    a = 1
    while all_anchors_collude(n, a, corrupt) > 2.0 ** -bits:
        a += 1
    return min(a, n)


@lru_cache(maxsize=4096)
def privacy_failure(n: int, k: int, t_k: int, corrupt: int) -> float:
    """n · P[Hypergeom(n-1, c, k) ≥ t_k - 1] (1.0 when t_k ≤ 1: nothing protects an input)."""
    if t_k <= 1:
        return 1.0
    return min(1.0, n * hypergeom_tail(n - 1, min(corrupt, n - 1), k, t_k - 1))


@lru_cache(maxsize=4096)
def recovery_failure(n: int, k: int, t_k: int, dropped: int) -> float:
    """n · P[Hypergeom(n-1, d, k) > k + 1 - t_k]: some client keeps fewer than t_k holders."""
    if t_k > k + 1:
        return 1.0
    return min(1.0, n * hypergeom_tail(n - 1, min(dropped, n - 1), k, k + 2 - t_k))


def _largest_threshold(n: int, k: int, dropped: int, eta: int) -> int | None:
    """Largest t_k in [2, k + 1] with recovery failure ≤ 2^-η (monotone in t_k: bisect)."""
    lo, hi = 2, k + 1
    if recovery_failure(n, k, lo, dropped) > 2.0 ** -eta:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if recovery_failure(n, k, mid, dropped) <= 2.0 ** -eta:
            lo = mid
        else:
            hi = mid - 1
    return lo


@lru_cache(maxsize=1024)
def choose_graph(n: int, threshold: int, gamma: float, delta: float, sigma: int = SIGMA,
                 eta: int = ETA, degree: int | None = None) -> GraphParams:
    """The smallest degree (and its share threshold) meeting both bounds; ValueError says why
    no graph can. ``degree`` forces k (t_k still from the recovery bound): the clients'
    policies then decide whether it is safe."""
    if n < 2:
        raise ValueError(f"secure sum needs at least 2 participants, got {n}")
    if not 1 <= threshold <= n:
        raise ValueError(f"threshold {threshold} must be in [1, {n}]")
    c, d = counts(n, gamma, delta)
    if degree is not None:
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ValueError(f"secure_sum.options.degree must be an integer >= 1, got {degree!r}")
        if degree > n - 1:
            raise ValueError(f"secure_sum.options.degree={degree} exceeds n - 1 = {n - 1} for {n} participants")
        if degree < n - 1 and degree % 2:
            raise ValueError(f"secure_sum.options.degree={degree}: a Harary graph needs an even degree (or n - 1)")
        if degree == n - 1:
            return _complete(n, threshold, c, d)
        forced = _largest_threshold(n, degree, d, eta) or 2
        return GraphParams(degree, forced, privacy_failure(n, degree, forced, c),
                           recovery_failure(n, degree, forced, d), anchor_count(n, c))
    if n > COMPLETE_UP_TO:
        for k in range(2, n - 1, 2):
            t_k = _largest_threshold(n, k, d, eta)
            if t_k is not None and privacy_failure(n, k, t_k, c) <= 2.0 ** -sigma:
                return GraphParams(k, t_k, privacy_failure(n, k, t_k, c), recovery_failure(n, k, t_k, d),
                                   anchor_count(n, c))
    return _complete(n, threshold, c, d)


def _complete(n: int, threshold: int, c: int, d: int) -> GraphParams:
    """Complete graph: every client holds a share of everyone's secrets, t_k = T (the tails are
    then exact 0/1: a client's neighbourhood is everyone, whatever the seed: no anchors)."""
    return GraphParams(n - 1, threshold, privacy_failure(n, n - 1, threshold, c),
                       recovery_failure(n, n - 1, threshold, d))


def peer_quorum_graph(n: int, gamma: float, delta: float, sigma: int = SIGMA,
                      eta: int = ETA) -> tuple[int, int] | None:
    """(k, q) if per-peer quorums of q among a peer's k + 1 holders replaced the survivor-set
    acknowledgements: two quorums must meet in an honest holder (X ≥ 2q − k − 1 fails, ≤ 2^-σ)
    and q must survive the dropouts (recovery bound, ≤ 2^-η; q = t_k, which also keeps the
    X ≥ t_k − 1 bound). Not used by the protocol: it prices the alternative (module docstring).
    None when no k < n − 1 qualifies."""
    c, d = counts(n, gamma, delta)
    for k in range(2, n - 1, 2):
        q = _largest_threshold(n, k, d, eta)
        if q is None:
            continue
        reach = min(q - 1, 2 * q - k - 1)
        if reach > 0 and n * hypergeom_tail(n - 1, min(c, n - 1), k, reach) <= 2.0 ** -sigma:
            return k, q
    return None


def committee_quorum(n: int, gamma: float, delta: float, bits: int = ANCHOR_BITS,
                     eta: int = ETA) -> tuple[int, int] | None:
    """(A_c, q): the smallest committee (a uniform A_c-subset for each round digest the server
    tries) and its quorum such that two q-quorums share an honest member except with
    probability 2^-bits per digest (X_c ≥ 2q − A_c colluding members) and q members survive the
    dropouts except with 2^-η. Not used by the protocol (module docstring, (iii)). None when
    no committee smaller than n qualifies."""
    c, d = counts(n, gamma, delta)
    for a in range(2, n):
        q = next((q for q in range(a, a // 2, -1) if hypergeom_tail(n, d, a, a - q + 1) <= 2.0 ** -eta), None)
        if q is not None and hypergeom_tail(n, c, a, 2 * q - a) <= 2.0 ** -bits:
            return a, q
    return None
