"""Client-side rejection paths: a bad server message makes the client raise ProtocolError
naming "server" and the stage, and a client never reveals both secrets of one peer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from secure_fgrpo.secure_sum import Message, ProtocolError
from secure_fgrpo.secure_sum.masked import messages as m
from secure_fgrpo.secure_sum.masked.context import STAGES
from secure_fgrpo.secure_sum.masked.simulate import SimRound, make_round, make_spec

N, T = 8, 6  # with _sim's degree override: a ring of degree 4, share threshold 3
VICTIM = "client-003"


def _sim(tmp_path: Path, **options: object) -> SimRound:
    ring = {"degree": 4, "policy": {"delta": 0.25}}  # 2 dropouts: share threshold 3
    return make_round(tmp_path, make_spec(N, 40, T, round_=9), {**ring, **options})


def _advance(sim: SimRound, stage: str,
             drop: dict[str, set[str] | Callable[[], set[str]]] | None = None) -> dict[str, Message]:
    """Run the stages before ``stage``; return the server's replies (the inputs to ``stage``)."""
    drop = drop or {}
    gone: set[str] = set()
    replies: dict[str, Message] = {}
    for s in STAGES[: STAGES.index(stage)]:
        who = drop.get(s, set())
        gone |= who() if callable(who) else who  # a callable: decided once the graph is drawn
        inbound = {n: c.respond(s, replies.get(n)) for n, c in sim.clients.items() if n not in gone}
        replies = sim.server.process(s, {n: msg for n, msg in inbound.items() if msg is not None})
    return replies


def _graph(sim: SimRound):
    return sim.server.graph


def _stranger(sim: SimRound) -> str:
    g = _graph(sim)
    return next(p for p in g.order if p != VICTIM and p not in g.neighbours[VICTIM])


def _neighbour(sim: SimRound) -> str:
    return min(_graph(sim).neighbours[VICTIM])


def _edit(msg: Message, **changes: object) -> Message:
    body = dataclasses.replace(m.decode(msg.kind, msg.payload), **changes)
    return dataclasses.replace(msg, payload=body.to_bytes())


def _flip(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 1])


def _expect_refusal(sim: SimRound, stage: str, msg: Message, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        sim.clients[VICTIM].respond(stage, msg)
    assert (info.value.sender, info.value.stage) == ("server", stage)


ENVELOPE: dict[str, tuple[Callable[[Message], Message], str]] = {
    "malformed": (lambda msg: dataclasses.replace(msg, payload=b"junk"), "magic"),
    "truncated": (lambda msg: dataclasses.replace(msg, payload=msg.payload[:-1]), "left|trailing|needs"),
    "wrong kind": (lambda msg: dataclasses.replace(msg, kind="masked"), "kind"),
    "other round": (lambda msg: dataclasses.replace(msg, round=msg.round + 1), "round"),
    "other stage": (lambda msg: dataclasses.replace(msg, stage="advertise"), "stage"),
    "other recipient": (lambda msg: dataclasses.replace(msg, recipient="client-000"), "addressed"),
    "not from the server": (lambda msg: dataclasses.replace(msg, sender="client-000"), "not the server"),
}


@pytest.mark.parametrize("stage", STAGES[1:])
@pytest.mark.parametrize("case", sorted(ENVELOPE))
def test_envelope_rejections(tmp_path: Path, stage: str, case: str) -> None:
    sim = _sim(tmp_path)
    replies = _advance(sim, stage)
    tamper, match = ENVELOPE[case]
    _expect_refusal(sim, stage, tamper(replies[VICTIM]), match)


def _keybook_cases(sim: SimRound, replies: dict[str, Message]) -> dict[str, tuple[Message, str]]:
    book = m.decode("keybook", replies[VICTIM].payload)
    e0 = next(e for e in book.entries if e[0] != VICTIM)
    rest = tuple(e for e in book.entries if e != e0)
    mine = next(e for e in book.entries if e[0] == VICTIM)
    anchor = next(a for a in sim.server.ctx.anchors if a != VICTIM)
    g, anchors = _graph(sim), sim.server.ctx.anchors
    outside = next(p for p in g.order if p != VICTIM and p not in g.neighbours[VICTIM] and p not in anchors)
    stranger = next(e for e in m.decode("keybook", replies[outside].payload).entries if e[0] == outside)
    return {
        "outsider": (_edit(replies[VICTIM], entries=(*book.entries, ("mallory", *e0[1:]))), "not a participant"),
        "own advertisement replaced": (_edit(replies[VICTIM], entries=tuple(
            (VICTIM, e0[1], e0[2], mine[3]) if e[0] == VICTIM else e for e in book.entries)),
            "different advertisement"),
        "own signature flipped": (_edit(replies[VICTIM], entries=tuple(
            (VICTIM, *mine[1:3], _flip(mine[3])) if e[0] == VICTIM else e for e in book.entries)),
            "different advertisement"),
        "listed twice": (_edit(replies[VICTIM], entries=(*book.entries, e0)), "twice"),
        "signature flipped": (_edit(replies[VICTIM], entries=((e0[0], e0[1], e0[2], _flip(e0[3])), *rest)),
                              "not signed"),
        "unsigned": (_edit(replies[VICTIM], entries=((e0[0], e0[1], e0[2], b""), *rest)), "not signed"),
        "key swapped": (_edit(replies[VICTIM], entries=((e0[0], e0[2], e0[1], e0[3]), *rest)), "not signed"),
        "same key twice": (_edit(replies[VICTIM], entries=((e0[0], e0[1], e0[1], e0[3]), *rest)), "same key"),
        "an anchor hidden": (_edit(replies[VICTIM], entries=tuple(e for e in book.entries if e[0] != anchor)),
                             "lacks the advertisement of anchor"),
        "a stranger added": (_edit(replies[VICTIM], entries=(*book.entries, stranger)),
                             "neither an anchor nor a neighbour"),
    }


@pytest.mark.parametrize("case", ["outsider", "own advertisement replaced", "own signature flipped", "listed twice",
                                  "signature flipped", "unsigned", "key swapped", "same key twice",
                                  "an anchor hidden", "a stranger added"])
def test_keybook_rejections(tmp_path: Path, case: str) -> None:
    sim = _sim(tmp_path)
    replies = _advance(sim, "share")
    msg, match = _keybook_cases(sim, replies)[case]
    _expect_refusal(sim, "share", msg, match)


def test_keybook_low_order_key_unsigned(tmp_path: Path) -> None:
    sim = _sim(tmp_path, signed=False)
    replies = _advance(sim, "share")
    book = m.decode("keybook", replies[VICTIM].payload)
    # Only the anchors' keys draw the graph: give every other neighbour the low-order key.
    keep = {VICTIM, *sim.server.ctx.anchors}
    low = tuple((e[0], bytes(32), e[2], b"") if e[0] not in keep else e for e in book.entries)
    assert low != book.entries
    _expect_refusal(sim, "share", _edit(replies[VICTIM], entries=low), "invalid")
    sim2 = _sim(tmp_path / "b", signed=False)
    replies = _advance(sim2, "share")
    book = m.decode("keybook", replies[VICTIM].payload)
    e0 = next(e for e in book.entries if e[0] != VICTIM)
    others = tuple(e for e in book.entries if e != e0)
    forged = _edit(replies[VICTIM], entries=((e0[0], e0[1], e0[2], b"s" * 64), *others))
    with pytest.raises(ProtocolError, match="not signed"):
        sim2.clients[VICTIM].respond("share", forged)


@pytest.mark.parametrize("case", ["flipped", "stranger", "twice", "swapped", "too few"])
def test_forwarded_share_rejections(tmp_path: Path, case: str) -> None:
    sim = _sim(tmp_path)
    replies = _advance(sim, "masked_input")
    entries = m.decode("forward", replies[VICTIM].payload).entries
    (o0, b0, c0, s0), (o1, b1, c1, s1) = entries[0], entries[1]
    edits = {  # the owner signs each sealed share: a server that edits one is caught by name
        "flipped": (((o0, _flip(b0), c0, s0), *entries[1:]), f"not signed by {o0!r}"),
        "stranger": ((*entries, (_stranger(sim), b0, c0, s0)), "not in the key book"),
        "twice": ((*entries, entries[0]), "twice"),
        "swapped": (((o0, b1, c1, s1), (o1, b0, c0, s0), *entries[2:]), "not signed"),
        "too few": (entries[:1], "never be unmasked"),
    }
    new, match = edits[case]
    _expect_refusal(sim, "masked_input", _edit(replies[VICTIM], entries=new), match)


@pytest.mark.parametrize("case", ["omits me", "duplicates", "outsider", "below threshold", "never shared"])
def test_survivor_list_rejections(tmp_path: Path, case: str) -> None:
    sim = _sim(tmp_path)
    drop = {"share": lambda: {_neighbour(sim)}} if case == "never shared" else None
    replies = _advance(sim, "consistency", drop=drop)
    nb = _neighbour(sim)
    names = m.decode("survivors", replies[VICTIM].payload).names
    others = tuple(n for n in names if n != VICTIM)
    edits = {
        "omits me": (others, "omits"),
        "duplicates": ((*names, names[0]), "duplicates"),
        "outsider": ((*names, "mallory"), "non-participant"),
        "below threshold": ((VICTIM, *others[:T - 2]), "below the threshold"),
        "never shared": (tuple(sorted((*names, nb))), "never shared"),
    }
    new, match = edits[case]
    _expect_refusal(sim, "consistency", _edit(replies[VICTIM], names=new), match)


def _unmask_setup(tmp_path: Path, drop: dict[str, set[str] | Callable[[], set[str]]] | None = None,
                  **options: object):
    sim = _sim(tmp_path, **options)
    replies = _advance(sim, "unmask", drop)
    return sim, replies[VICTIM], m.decode("unmask-request", replies[VICTIM].payload)


@pytest.mark.parametrize("case", ["survivors changed", "too few acks", "ack forged", "ack of another set",
                                  "ack twice", "ack from a non-survivor"])
def test_unmask_request_ack_rejections(tmp_path: Path, case: str) -> None:
    sim, msg, req = _unmask_setup(tmp_path)
    a0 = req.acks[0]
    edits = {
        "survivors changed": ({"names": req.names[:-1]}, "differs"),
        "too few acks": ({"acks": req.acks[: T - 1]}, "acknowledgement"),
        "ack forged": ({"acks": ((a0[0], a0[1], _flip(a0[2])), *req.acks[1:])}, "does not sign"),
        "ack of another set": ({"acks": ((a0[0], bytes(32), a0[2]), *req.acks[1:])}, "does not sign"),
        "ack twice": ({"acks": (*req.acks, a0)}, "duplicated"),
        "ack from a non-survivor": ({"acks": (("mallory", a0[1], a0[2]), *req.acks[1:])}, "not a survivor"),
    }
    changes, match = edits[case]
    _expect_refusal(sim, "unmask", _edit(msg, **changes), match)


def test_unsigned_acks_must_be_bare(tmp_path: Path) -> None:
    sim, msg, req = _unmask_setup(tmp_path, signed=False)
    a0 = req.acks[0]
    _expect_refusal(sim, "unmask", _edit(msg, acks=((a0[0], a0[1], b"x" * 64), *req.acks[1:])), "does not sign")


@pytest.mark.parametrize("case", ["both shares of one peer", "mask key of a survivor", "own mask key",
                                  "share not held", "self mask of a dropped peer", "asked twice"])
def test_reveal_rules(tmp_path: Path, case: str) -> None:
    sim = _sim(tmp_path)
    dropped = case == "self mask of a dropped peer"
    replies = _advance(sim, "unmask", {"masked_input": lambda: {_neighbour(sim)}} if dropped else None)
    msg = replies[VICTIM]
    req = m.decode("unmask-request", msg.payload)
    peer = next(p for p in req.self_requests if p != VICTIM)
    edits = {
        "both shares of one peer": ({"key_requests": (*req.key_requests, peer)}, "both the self-mask share"),
        "mask key of a survivor": ({"self_requests": tuple(p for p in req.self_requests if p != peer),
                                    "key_requests": (peer,)}, "input is in the sum"),
        "own mask key": ({"self_requests": tuple(p for p in req.self_requests if p != VICTIM),
                          "key_requests": (VICTIM,)}, "input is in the sum"),
        "share not held": ({"self_requests": (*req.self_requests, _stranger(sim))}, "does not hold"),
        "self mask of a dropped peer": ({"self_requests": req.self_requests + req.key_requests, "key_requests": ()},
                                        "not a survivor"),
        "asked twice": ({"self_requests": (*req.self_requests, peer)}, "twice"),
    }
    if case == "self mask of a dropped peer":
        assert req.key_requests == (_neighbour(sim),)
    changes, match = edits[case]
    _expect_refusal(sim, "unmask", _edit(msg, **changes), match)


def test_a_revealed_share_is_never_followed_by_the_other(tmp_path: Path) -> None:
    """The per-peer ledger: once the self-mask share of a peer is out, its mask-key share never is."""
    sim = _sim(tmp_path)
    replies = _advance(sim, "unmask")
    peer = _neighbour(sim)
    client = sim.clients[VICTIM]
    out = client.respond("unmask", replies[VICTIM])
    assert out is not None and peer in {p for p, _ in m.decode("unmask", out.payload).self_shares}
    with pytest.raises(ProtocolError, match="already revealed"):
        client._reveal("unmask", [], [peer])  # a second request, e.g. after a forged restart
    with pytest.raises(ProtocolError, match="out of stage"):
        client.respond("unmask", replies[VICTIM])


def test_out_of_stage_calls(tmp_path: Path) -> None:
    sim = _sim(tmp_path)
    c = sim.clients[VICTIM]
    with pytest.raises(ProtocolError, match="out of stage") as info:
        c.respond("share", None)
    assert info.value.sender == "server"
    other = sim.clients["client-000"]
    adv = other.respond("advertise", None)
    with pytest.raises(ProtocolError, match="unexpected message"):
        c.respond("advertise", adv)


def test_input_outside_the_bounds_is_refused(tmp_path: Path) -> None:
    import numpy as np

    sim = _sim(tmp_path)
    v = np.zeros(sim.spec.dim)
    v[0] = 2 * sim.spec.data_bound
    with pytest.raises(ValueError, match="data_bound"):
        sim.clients[VICTIM].set_input(v)
    v[0], v[-1] = 0.0, -1.0
    with pytest.raises(ValueError, match="weight"):
        sim.clients[VICTIM].set_input(v)
