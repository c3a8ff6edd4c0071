"""Neighbour graph and its parameters (issue 13 item 1, issue 17 item 1): exact hypergeometric
tails, a degree that grows slowly with n, graph randomness no single party picks, each
institution's policy refusing weak rounds by key."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from secure_fgrpo.secure_sum import SumSpec
from secure_fgrpo.secure_sum.masked.context import Params, RoundContext
from secure_fgrpo.secure_sum.masked.graph import build_graph, graph_seed
from secure_fgrpo.secure_sum.masked.params import (
    COMPLETE_UP_TO,
    GraphParams,
    choose_graph,
    committee_quorum,
    counts,
    hypergeom_tail,
    peer_quorum_graph,
    privacy_failure,
    recovery_failure,
)
from secure_fgrpo.secure_sum.masked.policy import PolicyRefusal, SecurityPolicy


def _exact_tail(pop: int, good: int, draws: int, at_least: int) -> Fraction:
    total = math.comb(pop, draws)
    return sum((Fraction(math.comb(good, x) * math.comb(pop - good, draws - x), total)
                for x in range(at_least, min(good, draws) + 1)), Fraction(0))


@pytest.mark.parametrize("n, k, t_k, c", [(100, 32, 23, 20), (500, 66, 42, 100), (50, 16, 12, 10), (30, 8, 4, 6)])
def test_tails_match_exact_rational_arithmetic(n: int, k: int, t_k: int, c: int) -> None:
    exact = min(Fraction(1), n * _exact_tail(n - 1, c, k, t_k - 1))
    assert privacy_failure(n, k, t_k, c) == pytest.approx(float(exact), rel=1e-6, abs=1e-300)
    exact = min(Fraction(1), n * _exact_tail(n - 1, c, k, k + 2 - t_k))
    assert recovery_failure(n, k, t_k, c) == pytest.approx(float(exact), rel=1e-6, abs=1e-300)
    from scipy.stats import hypergeom  # the reference implementation agrees where it is accurate

    assert hypergeom_tail(n - 1, c, k, t_k - 1) == pytest.approx(hypergeom.sf(t_k - 2, n - 1, c, k), rel=1e-6)


# Computed by choose_graph (γ = 0.2, δ = 0.1, σ = 40, η = 30, T = ⌈0.66 n⌉); documented in SECURITY.md.
TABLE = {10: (9, 7), 20: (8, 7), 50: (16, 12), 100: (32, 23), 200: (50, 33), 500: (66, 42), 1000: (74, 46)}


@pytest.mark.parametrize("n", sorted(TABLE))
def test_parameter_table(n: int) -> None:
    p = choose_graph(n, math.ceil(0.66 * n), 0.2, 0.1, 40, 30)
    assert (p.degree, p.share_threshold) == TABLE[n]
    assert p.privacy_failure <= 2.0 ** -40 and p.recovery_failure <= 2.0 ** -30
    if p.degree < n - 1:  # the smallest such degree: one step down breaks a bound
        k = p.degree - 2
        worse = [choose_graph(n, math.ceil(0.66 * n), 0.2, 0.1, 40, 30, degree=k)] if k >= 2 else []
        assert all(w.privacy_failure > 2.0 ** -40 or w.recovery_failure > 2.0 ** -30 for w in worse)


def test_degree_grows_slowly_and_small_n_is_complete() -> None:
    for n in range(3, COMPLETE_UP_TO + 1):
        assert choose_graph(n, max(2, math.ceil(0.66 * n)), 0.2, 0.1).complete(n)
    k = {n: choose_graph(n, math.ceil(0.66 * n), 0.2, 0.1).degree for n in (100, 1000)}
    assert k[1000] < 2.5 * k[100]  # ten times the clients, well under 2.5 times the degree


def _names(n: int) -> tuple[str, ...]:
    return tuple(f"p{i:03d}" for i in range(n))


def test_graph_is_regular_symmetric_and_a_permutation() -> None:
    names = _names(40)
    g = build_graph(names, GraphParams(8, 6, 0.0, 0.0), bytes(32))
    assert sorted(g.order) == sorted(names)
    assert all(len(v) == 8 for v in g.neighbours.values())
    assert all(a in g.neighbours[b] for a, nb in g.neighbours.items() for b in nb)


def test_seed_grinding_no_longer_moves_a_victims_neighbours() -> None:
    """The server used to pick SumSpec.seed (and with it the graph); now the seed is the hash of
    every advertisement, so trying seeds changes nothing, while any party's fresh key does."""
    names = _names(25)
    ads = [(n, bytes([i]) * 32, bytes([i + 100]) * 32, b"") for i, n in enumerate(names)]
    params = choose_graph(25, 17, 0.2, 0.1)
    victim = names[3]
    seen = set()
    for seed in range(200):  # what a grinding server controls: the spec (seed included)
        spec = SumSpec(round=1, dim=3, data_bound=1.0, weight_bound=1.0, participants=names,
                       threshold=17, seed=seed)
        ctx = RoundContext.build(spec, Params(), None)
        seen.add(ctx.build_graph(graph_seed(ctx.digest, ads)).neighbours[victim])
    assert len(seen) == 1
    moved = {build_graph(names, params, graph_seed(b"d", [*ads[:5], (names[5], bytes([j]) * 32, ads[5][2], b""),
                                                          *ads[6:]])).neighbours[victim] for j in range(200, 220)}
    assert len(moved) > 10  # one client's fresh key re-draws the whole graph


def _spec(n: int, t: int) -> SumSpec:
    return SumSpec(round=1, dim=3, data_bound=1.0, weight_bound=1.0, participants=_names(n), threshold=t)


@pytest.mark.parametrize("policy, spec, graph, key", [
    (SecurityPolicy(min_threshold=0.7), _spec(10, 6), choose_graph(10, 6, 0.1, 0.1), "min_threshold"),
    (SecurityPolicy(), _spec(10, 6), choose_graph(10, 6, 0.2, 0.1), "gamma"),  # 2T = 12 <= n + c = 12
    (SecurityPolicy(delta=0.2), _spec(10, 9), GraphParams(9, 9, 0.0, 0.0), "delta"),  # T = 9 > n - d = 8
    (SecurityPolicy(), _spec(100, 66), choose_graph(100, 66, 0.2, 0.1, degree=4), "gamma"),
    (SecurityPolicy(delta=0.3), _spec(100, 66), choose_graph(100, 66, 0.2, 0.1), "delta"),
    (SecurityPolicy(roster=_names(9)), _spec(10, 7), choose_graph(10, 7, 0.2, 0.1), "roster"),
])
def test_policy_refuses_naming_the_key(policy: SecurityPolicy, spec: SumSpec, graph: GraphParams, key: str) -> None:
    with pytest.raises(PolicyRefusal, match=f"security.{key}:") as info:
        policy.admit(spec, graph)
    assert info.value.key == key and info.value.sender == "server"


def test_policy_admits_its_own_proposal_and_validates_keys() -> None:
    for n in (5, 10, 50, 200):
        t = math.ceil(0.66 * n)
        SecurityPolicy().admit(_spec(n, t), choose_graph(n, t, 0.2, 0.1))
    with pytest.raises(ValueError, match=r"security.gamma must be"):
        SecurityPolicy(gamma=1.5)
    with pytest.raises(ValueError, match="gamma \\+ 2·delta"):
        SecurityPolicy(gamma=0.5, delta=0.3)
    with pytest.raises(ValueError, match="unknown key"):
        SecurityPolicy.from_dict({"gama": 0.1})
    assert SecurityPolicy.from_dict({"sigma": 64}, SecurityPolicy(gamma=0.1)).gamma == 0.1


def _server_gets_both_kinds(k: int, q: int, colluders: int) -> bool:
    """Brute force: the server shows each of a peer's honest holders (k + 1 − X of them) one
    status ("dropped" or "survived") and each signs it; colluders sign both. Do both statuses
    reach q signatures (two conflicting certificates)?"""
    honest = k + 1 - colluders
    return any(colluders + told_dropped >= q and colluders + honest - told_dropped >= q
               for told_dropped in range(honest + 1))


@pytest.mark.parametrize("n", [100, 200, 500, 1000])
def test_per_peer_quorums_would_cost_more_than_the_acknowledgement_quorum(n: int) -> None:
    """Two quorums of q among k + 1 holders conflict exactly when 2q ≤ k + 1 + X (brute force
    over the server's stories); at today's (k, t_k) that happens with a non-negligible chance
    (so today's degree could not use them), and the degree that avoids it is larger and makes a
    client check (k + 1)·q signatures, more than the T acknowledgements it checks now."""
    for k, q in ((8, 6), (12, 8), (32, 23)):
        for x in range(k + 2):
            assert _server_gets_both_kinds(k, q, x) == (x >= q or 2 * q <= k + 1 + x)
    t = math.ceil(0.66 * n)
    today = choose_graph(n, t, 0.2, 0.1)
    c, _ = counts(n, 0.2, 0.1)
    reach = 2 * today.share_threshold - today.degree - 1
    assert n * hypergeom_tail(n - 1, c, today.degree, max(reach, 0)) > 2.0 ** -40
    got = peer_quorum_graph(n, 0.2, 0.1)
    assert got is not None
    k, q = got
    assert k > today.degree and n * hypergeom_tail(n - 1, c, k, min(q - 1, 2 * q - k - 1)) <= 2.0 ** -40
    assert {100: 40, 200: 76, 500: 128, 1000: 158}[n] == k
    assert (k + 1) * q > t


def test_a_committee_quorum_would_need_fewer_checks_than_t_but_is_not_built() -> None:
    """The open alternative (params docstring (iii)), priced with the exact tails: at n = 100
    its safety is deterministic (all c colluders inside the committee still leave two quorums an
    honest member in common), and the quorum is below T at every n tried."""
    c, _ = counts(100, 0.2, 0.1)
    a, q = committee_quorum(100, 0.2, 0.1) or (0, 0)
    assert (a, q) == (41, 31) and 2 * q - a > c
    for n, want in ((200, (81, 61)), (500, (157, 122)), (1000, (204, 159))):
        got = committee_quorum(n, 0.2, 0.1)
        assert got == want and want[1] < math.ceil(0.66 * n)
