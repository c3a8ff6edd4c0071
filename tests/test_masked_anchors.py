"""The graph seed from A anchors' advertisements (masked/graph.py): a client checks O(A + k)
signatures instead of n, the anchor count keeps a grinding server from owning every anchor,
only an anchor's advertisement moves the graph, and a colluding anchor's second advertisement
(a split view) is caught by the survivor digest every revealing client signs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from secure_fgrpo.secure_sum import Message, ProtocolError
from secure_fgrpo.secure_sum.masked import client as client_mod
from secure_fgrpo.secure_sum.masked import crypto
from secure_fgrpo.secure_sum.masked import messages as m
from secure_fgrpo.secure_sum.masked.context import STAGES
from secure_fgrpo.secure_sum.masked.graph import anchors, graph_seed
from secure_fgrpo.secure_sum.masked.params import (
    ANCHOR_BITS,
    all_anchors_collude,
    anchor_count,
    choose_graph,
)
from secure_fgrpo.secure_sum.masked.simulate import SimRound, make_round, make_spec


@pytest.mark.parametrize("n", [20, 50, 100, 200, 500, 1000, 10_000])
def test_anchor_count_is_the_smallest_that_defeats_grinding_and_stops_growing(n: int) -> None:
    c = math.floor(0.2 * n)
    a = anchor_count(n, c)
    assert all_anchors_collude(n, a, c) <= 2.0 ** -ANCHOR_BITS < all_anchors_collude(n, a - 1, c)
    assert a <= min(c + 1, 56)  # c + 1 anchors cannot all collude; ~128 / log2(5) at γ = 0.2
    assert choose_graph(n, math.ceil(0.66 * n), 0.2, 0.1).anchors == a


def test_all_anchors_collude_is_the_exact_hypergeometric_probability() -> None:
    assert all_anchors_collude(10, 2, 3) == pytest.approx(3 / 45)  # C(3,2) / C(10,2)
    assert all_anchors_collude(10, 4, 3) == 0.0
    assert choose_graph(10, 7, 0.2, 0.1).anchors == 0  # complete graph: the seed moves no edge


def test_anchors_are_a_keyed_choice_by_the_digest() -> None:
    names = tuple(f"p{i:03d}" for i in range(200))
    a = anchors(names, b"d" * 32, 39)
    assert len(set(a)) == 39 and set(a) <= set(names) and a == anchors(names, b"d" * 32, 39)
    others = {anchors(names, bytes([j]) * 32, 39) for j in range(20)}
    assert len(others) == 20  # each digest a fresh subset: a server must grind whole digests


def _sim(tmp_path: Path, n: int = 40) -> SimRound:
    return make_round(tmp_path, make_spec(n, 8, round_=3))


def _advertise(sim: SimRound) -> dict[str, Message]:
    ads = {name: c.respond("advertise", None) for name, c in sim.clients.items()}
    return sim.server.process("advertise", {k: v for k, v in ads.items() if v is not None})


def _entries(sim: SimRound) -> dict[str, tuple[str, bytes, bytes, bytes]]:
    return {v: (v, a.c_public, a.s_public, a.signature) for v, a in sim.server._adv.items()}


def test_only_an_anchors_advertisement_moves_the_graph(tmp_path: Path) -> None:
    sim = _sim(tmp_path)
    _advertise(sim)
    ctx, entries = sim.server.ctx, _entries(sim)
    assert sim.server.graph is not None
    seed = graph_seed(ctx.digest, [entries[a] for a in ctx.anchors])
    assert seed == sim.server.graph.seed
    other = next(p for p in ctx.spec.participants if p not in ctx.anchors)  # its keys are not in the seed
    moved = set()
    for j in range(10):
        changed = dict(entries)
        a0 = ctx.anchors[0]
        changed[a0] = (a0, bytes([j + 1]) * 32, entries[a0][2], entries[a0][3])
        moved.add(ctx.build_graph(graph_seed(ctx.digest, [changed[a] for a in ctx.anchors])).neighbours[other])
    assert len(moved) == 10  # one anchor's fresh key re-draws everyone's neighbourhood


def test_a_client_checks_anchor_and_neighbour_signatures_only(tmp_path: Path, monkeypatch: Any) -> None:
    n = 100
    sim = make_round(tmp_path, make_spec(n, 8, round_=3))
    books = _advertise(sim)
    ctx = sim.server.ctx
    calls: list[bytes] = []
    real = client_mod.verify

    def counting(public: Any, signature: bytes, data: bytes) -> bool:
        calls.append(signature)
        return real(public, signature, data)

    monkeypatch.setattr(client_mod, "verify", counting)
    victim = ctx.spec.participants[5]
    assert sim.clients[victim].respond("share", books[victim]) is not None
    k, a = ctx.graph_params.degree, ctx.graph_params.anchors
    assert (k, a) == (32, 21)
    assert len(calls) <= a + k < n - 1  # before: one per participant
    book = m.decode("keybook", books[victim].payload)
    assert len(book.entries) <= a + k + 1


def _second_advert(sim: SimRound, anchor: str) -> tuple[str, bytes, bytes, bytes]:
    """A colluding anchor signs a second, valid advertisement with fresh keys."""
    keys, ctx = crypto.RoundKeys.generate(), sim.server.ctx
    identity = sim.clients[anchor]._identity
    assert identity is not None
    sig = identity.sign(ctx.sign_bytes("advertise", anchor.encode(), keys.c_public, keys.s_public))
    return anchor, keys.c_public, keys.s_public, sig


def test_a_colluding_anchors_second_advertisement_splits_the_graph_and_is_caught(tmp_path: Path) -> None:
    """The server shows one client a colluding anchor's second advertisement: the book verifies
    and the client draws another graph, but every revealing client signs (survivors, seed), so
    the other clients' acknowledgements never count for it, and it reveals nothing."""
    sim = _sim(tmp_path)
    _advertise(sim)
    ctx, entries = sim.server.ctx, _entries(sim)
    victim = next(p for p in ctx.spec.participants if p not in ctx.anchors)
    colluder = ctx.anchors[0]
    split = dict(entries)
    split[colluder] = _second_advert(sim, colluder)
    graph = ctx.build_graph(graph_seed(ctx.digest, [split[a] for a in ctx.anchors]))
    real = sim.server.graph
    assert real is not None and graph.seed != real.seed
    wanted = (set(ctx.anchors) | graph.holders(victim)) & set(split)
    book = m.KeyBook(tuple(split[v] for v in ctx.spec.participants if v in wanted))
    msg = Message(ctx.spec.round, "share", "server", victim, m.KeyBook.KIND, book.to_bytes())
    assert sim.clients[victim].respond("share", msg) is not None  # accepted: every signature is valid
    drawn = sim.clients[victim].graph
    assert drawn is not None and drawn.seed == graph.seed
    names = ctx.spec.participants
    assert ctx.survivors_digest(names, graph.seed) != ctx.survivors_digest(names, real.seed)


def _run_to_unmask(sim: SimRound) -> dict[str, Message]:
    replies: dict[str, Message] = {}
    for s in STAGES[:-1]:
        out = {n: c.respond(s, replies.get(n)) for n, c in sim.clients.items()}
        replies = sim.server.process(s, {k: v for k, v in out.items() if v is not None})
    return replies


def test_acknowledgements_on_another_graph_seed_are_refused(tmp_path: Path) -> None:
    sim = _sim(tmp_path, n=20)
    replies = _run_to_unmask(sim)
    ctx = sim.server.ctx
    victim = ctx.spec.participants[0]
    req = m.decode("unmask-request", replies[victim].payload)

    def acks(seed: bytes) -> tuple[tuple[str, bytes, bytes], ...]:
        d = ctx.survivors_digest(req.names, seed)
        out = []
        for name in req.names:
            identity = sim.clients[name]._identity
            assert identity is not None
            out.append((name, d, identity.sign(ctx.sign_bytes("ack", d))))
        return tuple(out)

    other = dataclasses.replace(replies[victim], payload=dataclasses.replace(req, acks=acks(bytes(32))).to_bytes())
    with pytest.raises(ProtocolError, match="does not sign this survivor set"):
        sim.clients[victim].respond("unmask", other)
    assert sim.server.graph is not None
    same = dataclasses.replace(replies[victim], payload=dataclasses.replace(
        req, acks=acks(sim.server.graph.seed)).to_bytes())
    client = sim.clients[victim]
    client._next -= 1  # the refusal consumed the stage: replay it with the honest request
    assert client.respond("unmask", same) is not None
