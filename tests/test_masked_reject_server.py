"""Server-side rejection paths: malformed, duplicated, replayed, out-of-stage and wrongly
signed messages raise ProtocolError naming the sender and the stage, before any state
changes; the driver then drops the offender and the round still sums exactly."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.secure_sum import DropSchedule, Message, ProtocolError, run_secure_sum
from secure_fgrpo.secure_sum.masked import messages as m
from secure_fgrpo.secure_sum.masked import quantisation_bound
from secure_fgrpo.secure_sum.masked.context import STAGES
from secure_fgrpo.secure_sum.masked.simulate import ListRecorder, SimRound, make_round, make_spec

N, T = 8, 6  # complete graph (n <= params.COMPLETE_UP_TO): degree 7, share threshold 6
VICTIM = "client-003"
OTHER = "client-004"
EARLIER = "client-002"  # of two identical payloads, the server rejects the later sender (by name)


def _sim(tmp_path: Path, **options: object) -> SimRound:
    return make_round(tmp_path, make_spec(N, 40, T, round_=7), dict(options))


def _advance(sim: SimRound, stage: str) -> tuple[dict[str, Message], dict[str, Message]]:
    """Run the stages before ``stage``; return (server replies, client messages for ``stage``)."""
    replies: dict[str, Message] = {}
    for s in STAGES[: STAGES.index(stage) + 1]:
        inbound = {n: c.respond(s, replies.get(n)) for n, c in sim.clients.items()}
        inbound = {n: msg for n, msg in inbound.items() if msg is not None}
        if s == stage:
            return replies, inbound
        replies = sim.server.process(s, inbound)
    raise AssertionError(stage)


def _rebody(msg: Message, body: m.Wire) -> Message:
    return dataclasses.replace(msg, payload=body.to_bytes())


def _body(msg: Message):
    return m.decode(msg.kind, msg.payload)


def _flip(b: bytes, i: int = -1) -> bytes:
    out = bytearray(b)
    out[i] ^= 1
    return bytes(out)


Tamper = Callable[[SimRound, dict[str, Message]], None]


def _set(field_changes: dict) -> Tamper:
    def t(sim: SimRound, inbound: dict[str, Message]) -> None:
        inbound[VICTIM] = dataclasses.replace(inbound[VICTIM], **field_changes)
    return t


def _garbage(sim: SimRound, inbound: dict[str, Message]) -> None:
    inbound[VICTIM] = dataclasses.replace(inbound[VICTIM], payload=b"\x00garbage")


def _truncated(sim: SimRound, inbound: dict[str, Message]) -> None:
    inbound[VICTIM] = dataclasses.replace(inbound[VICTIM], payload=inbound[VICTIM].payload[:-1])


def _duplicate(sim: SimRound, inbound: dict[str, Message]) -> None:
    inbound[VICTIM] = dataclasses.replace(inbound[EARLIER], sender=VICTIM)


GENERIC: dict[str, Tamper] = {
    "malformed": _garbage,
    "truncated": _truncated,
    "wrong kind": _set({"kind": "bogus"}),
    "other round": _set({"round": 6}),
    "other stage": _set({"stage": "advertise"}),
    "not for the server": _set({"recipient": OTHER}),
    "claims another sender": _set({"sender": OTHER}),
    "duplicated": _duplicate,
}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("case", sorted(GENERIC))
def test_generic_rejections(tmp_path: Path, stage: str, case: str) -> None:
    if stage == "advertise" and case == "other stage":
        return  # the label 'advertise' is right at this stage; covered at the other stages
    sim = _sim(tmp_path)
    _, inbound = _advance(sim, stage)
    GENERIC[case](sim, inbound)
    with pytest.raises(ProtocolError) as info:
        sim.server.process(stage, inbound)
    assert (info.value.sender, info.value.stage) == (VICTIM, stage)
    assert VICTIM in str(info.value) and stage in str(info.value)
    # Nothing was applied: the stage goes through without the offender.
    inbound.pop(VICTIM)
    sim.server.process(stage, inbound)


def _adv(sim: SimRound, inbound: dict[str, Message], **changes: bytes) -> None:
    body = dataclasses.replace(_body(inbound[VICTIM]), **changes)
    inbound[VICTIM] = _rebody(inbound[VICTIM], body)


SPECIFIC: dict[str, tuple[str, Tamper, str]] = {
    "advert signed by another key": ("advertise", lambda s, i: _adv(s, i, signature=_body(i[OTHER]).signature),
                                     "signature"),
    "advert signature flipped": ("advertise", lambda s, i: _adv(s, i, signature=_flip(_body(i[VICTIM]).signature)),
                                 "signature"),
    "advert unsigned": ("advertise", lambda s, i: _adv(s, i, signature=b""), "signature"),
    "identical keys": ("advertise", lambda s, i: _adv_resigned(s, i, _body(i[VICTIM]).c_public,
                                                               _body(i[VICTIM]).c_public), "identical"),
    "key of another client, re-signed": ("advertise", lambda s, i: _adv_resigned(s, i, _body(i[EARLIER]).c_public),
                                         "already advertised"),
    "key of another client": ("advertise", lambda s, i: _adv(s, i, c_public=_body(i[OTHER]).c_public),
                              "signature"),
    "low-order key": ("advertise", lambda s, i: _adv_resigned(s, i, bytes(32)), "low order"),
    "low-order key, not signed again": ("advertise", lambda s, i: _adv(s, i, c_public=bytes(32)), "signature"),
    "share for a missing holder": ("share", lambda s, i: _shares(s, i, lambda e: e[1:]), "expected"),
    "share for an extra holder": ("share", lambda s, i: _shares(s, i, lambda e: (*e, ("mallory", *e[0][1:]))),
                                  "expected"),
    "two shares for one holder": ("share", lambda s, i: _shares(s, i, lambda e: (*e[:-1], e[0])), "same holder"),
    "sealed share of wrong size": ("share", lambda s, i: _shares(s, i, lambda e: ((e[0][0], e[0][1][:-1], *e[0][2:]),
                                                                                  *e[1:])),
                                   "bytes"),
    "masked vector of wrong size": ("masked_input", lambda s, i: _rebody_masked(i, lambda w: w[:-4]), "expected"),
    "masked vector too long": ("masked_input", lambda s, i: _rebody_masked(i, lambda w: w + b"\0" * 4), "expected"),
    "ack of another set": ("consistency", lambda s, i: _ack(i, digest=bytes(32)), "different survivor set"),
    "ack signature flipped": ("consistency", lambda s, i: _ack(i, signature=_flip(_body(i[VICTIM]).signature)),
                              "signature"),
    "ack signed by another": ("consistency", lambda s, i: _ack(i, signature=_body(i[OTHER]).signature),
                              "signature"),
    "unmask shares for the wrong peers": ("unmask", lambda s, i: _unmask(i,
                                                                         self_shares=_body(i[VICTIM]).self_shares[1:]),
                                          "expected"),
    "unmask share outside the field": ("unmask", lambda s, i: _unmask(
        i, self_shares=((_body(i[VICTIM]).self_shares[0][0], b"\xff" * 66), *_body(i[VICTIM]).self_shares[1:])),
        "outside the field"),
    "unmask key shares not asked for": ("unmask", lambda s, i: _unmask(
        i, key_shares=((_body(i[VICTIM]).self_shares[0][0], b"\x00" * 66),)), "expected"),
}


def _adv_resigned(sim: SimRound, inbound: dict[str, Message], c_public: bytes, s_public: bytes | None = None) -> None:
    """A malicious client: a bad advertisement signed with its own identity (provable: blamed)."""
    body = _body(inbound[VICTIM])
    s_public = body.s_public if s_public is None else s_public
    ctx, identity = sim.clients[VICTIM].ctx, sim.clients[VICTIM]._identity
    sig = identity.sign(ctx.sign_bytes("advertise", VICTIM.encode(), c_public, s_public))
    inbound[VICTIM] = _rebody(inbound[VICTIM], m.Advertise(c_public, s_public, sig))


def _shares(sim: SimRound, inbound: dict[str, Message], edit) -> None:
    body = _body(inbound[VICTIM])
    inbound[VICTIM] = _rebody(inbound[VICTIM], dataclasses.replace(body, entries=edit(body.entries)))


def _rebody_masked(inbound: dict[str, Message], edit) -> None:
    inbound[VICTIM] = _rebody(inbound[VICTIM], m.MaskedInput(edit(bytes(_body(inbound[VICTIM]).words))))


def _ack(inbound: dict[str, Message], **changes: bytes) -> None:
    inbound[VICTIM] = _rebody(inbound[VICTIM], dataclasses.replace(_body(inbound[VICTIM]), **changes))


def _unmask(inbound: dict[str, Message], **changes: object) -> None:
    inbound[VICTIM] = _rebody(inbound[VICTIM], dataclasses.replace(_body(inbound[VICTIM]), **changes))


@pytest.mark.parametrize("case", sorted(SPECIFIC))
def test_specific_rejections(tmp_path: Path, case: str) -> None:
    stage, tamper, match = SPECIFIC[case]
    sim = _sim(tmp_path)
    _, inbound = _advance(sim, stage)
    tamper(sim, inbound)
    with pytest.raises(ProtocolError, match=match) as info:
        sim.server.process(stage, inbound)
    assert (info.value.sender, info.value.stage) == (VICTIM, stage)
    # Only a bad advertisement the client signed itself is evidence against it.
    assert (VICTIM in sim.server.blamed()) == ("re-signed" in case or case in ("identical keys", "low-order key"))


def test_unsigned_mode_refuses_signatures_and_low_order_keys(tmp_path: Path) -> None:
    sim = _sim(tmp_path, signed=False)
    _, inbound = _advance(sim, "advertise")
    _adv(sim, inbound, signature=b"s" * 64)
    with pytest.raises(ProtocolError, match="signature"):
        sim.server.process("advertise", inbound)


def test_replayed_and_out_of_stage_calls(tmp_path: Path) -> None:
    sim = _sim(tmp_path)
    _, adverts = _advance(sim, "advertise")
    replies = sim.server.process("advertise", dict(adverts))
    # The same advertisements again: the stage is over.
    with pytest.raises(ProtocolError, match="already completed"):
        sim.server.process("advertise", dict(adverts))
    # A client replays its accepted advertisement as its share message.
    shares = {n: c.respond("share", replies.get(n)) for n, c in sim.clients.items()}
    shares[VICTIM] = dataclasses.replace(adverts[VICTIM], stage="share", kind="shares")
    with pytest.raises(ProtocolError, match="replays") as info:
        sim.server.process("share", shares)
    assert info.value.sender == VICTIM
    # A message for a stage the server has not reached.
    with pytest.raises(ProtocolError, match="out of stage"):
        sim.server.process("unmask", {OTHER: shares[OTHER]})
    with pytest.raises(RuntimeError, match="out of order"):
        sim.server.process("unmask", {})


def test_non_participant_is_refused(tmp_path: Path) -> None:
    sim = _sim(tmp_path)
    _, inbound = _advance(sim, "advertise")
    inbound["mallory"] = dataclasses.replace(inbound[VICTIM], sender="mallory")
    with pytest.raises(ProtocolError, match="not a participant") as info:
        sim.server.process("advertise", inbound)
    assert info.value.sender == "mallory"


def test_client_excluded_earlier_cannot_send_later(tmp_path: Path) -> None:
    sim = _sim(tmp_path)
    replies, inbound = _advance(sim, "share")
    inbound.pop(VICTIM)  # VICTIM drops before sharing...
    replies = sim.server.process("share", inbound)
    masked = {n: c.respond("masked_input", replies.get(n)) for n, c in sim.clients.items() if n != VICTIM}
    # ...then tries to slip a masked vector in.
    masked[VICTIM] = dataclasses.replace(masked[OTHER], sender=VICTIM, payload=masked[OTHER].payload[::-1])
    with pytest.raises(ProtocolError, match="not expected at this stage"):
        sim.server.process("masked_input", masked)


class _Corrupting:
    """Wraps a client and corrupts its message at one stage (a faulty or malicious client)."""

    def __init__(self, inner, stage: str) -> None:
        self.inner, self.stage = inner, stage

    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        msg = self.inner.respond(stage, inbound)
        if stage == self.stage and msg is not None:
            return dataclasses.replace(msg, payload=msg.payload[:-1])
        return msg


@pytest.mark.parametrize("stage", STAGES)
def test_driver_drops_the_offender_and_the_sum_stays_exact(tmp_path: Path, stage: str) -> None:
    sim = _sim(tmp_path)
    clients = dict(sim.clients)
    clients[VICTIM] = _Corrupting(sim.clients[VICTIM], stage)  # type: ignore[assignment]
    out = run_secure_sum(sim.server, clients, ListRecorder(), DropSchedule())
    assert not out.aborted, out.reason
    in_sum = stage in ("consistency", "unmask")  # its masked input was already accepted
    assert (VICTIM in out.contributors) == in_sum
    exact = sum(sim.inputs[c] for c in out.contributors)
    assert np.abs(out.total - exact).max() <= quantisation_bound(sim.spec, len(out.contributors))
