"""Neighbour graph: regular, symmetric, and recovery holds for every dropout pattern that
leaves t survivors, while no client's two secrets can come from disjoint holder halves."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from secure_fgrpo.secure_sum.masked.graph import build_graph, choose_degree, ring_order


@pytest.mark.parametrize("n, t, k, t_k", [
    (3, 2, 2, 2), (4, 3, 2, 2), (5, 4, 2, 2), (10, 7, 6, 4), (20, 14, 12, 7),
    (50, 33, 34, 18), (100, 66, 68, 35), (10, 10, 2, 3), (6, 4, 4, 3),
])
def test_degree_table(n: int, t: int, k: int, t_k: int) -> None:
    assert choose_degree(n, t) == (k, t_k)


def _names(n: int) -> tuple[str, ...]:
    return tuple(f"p{i}" for i in range(n))


@pytest.mark.parametrize("n", range(2, 21))
def test_regular_symmetric_and_private(n: int) -> None:
    t = max(n // 2 + 1, math.ceil(0.66 * n))
    g = build_graph(_names(n), t, seed=1, round_=2)
    assert all(len(v) == g.degree for v in g.neighbours.values())
    for a, nb in g.neighbours.items():
        assert a not in nb
        assert all(a in g.neighbours[b] for b in nb)
    assert 2 * g.share_threshold > g.degree + 1


@pytest.mark.parametrize("n", range(3, 10))
def test_recovery_for_every_dropout_pattern(n: int) -> None:
    """Exhaustive: whoever drops (up to n - t), every holder set keeps t_k live members."""
    t = n // 2 + 1
    g = build_graph(_names(n), t, seed=0, round_=1)
    for d in range(n - t + 1):
        for gone in itertools.combinations(g.order, d):
            alive = set(g.order) - set(gone)
            assert all(len(g.holders(u) & alive) >= g.share_threshold for u in g.order)


def test_recovery_random_patterns_large_n() -> None:
    rng = np.random.default_rng(0)
    for n, t in [(30, 20), (50, 33), (100, 66)]:
        g = build_graph(_names(n), t, seed=5, round_=1)
        assert g.degree < n - 1  # a sparse ring, not the complete graph
        for _ in range(200):
            gone = set(rng.choice(g.order, size=n - t, replace=False))
            alive = set(g.order) - gone
            assert min(len(g.holders(u) & alive) for u in g.order) >= g.share_threshold


def test_low_threshold_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="above n/2"):
        choose_degree(10, 5)
    with pytest.raises(ValueError, match="above n/2"):
        choose_degree(2, 1)
    with pytest.raises(ValueError, match="at least 2"):
        choose_degree(1, 1)


def test_degree_override() -> None:
    assert choose_degree(20, 14, degree=4) == (4, 3)
    assert choose_degree(6, 6, degree=5) == (5, 4)
    for bad, match in [(3, "even"), (25, "exceeds"), (0, ">= 1"), (True, ">= 1")]:
        with pytest.raises(ValueError, match=match):
            choose_degree(20, 14, degree=bad)


def test_ring_order_is_public_and_round_dependent() -> None:
    names = _names(12)
    assert ring_order(names, 1, 1) == ring_order(names, 1, 1)
    assert ring_order(names, 1, 1) != ring_order(names, 1, 2)
    assert sorted(ring_order(names, 3, 1)) == sorted(names)
