"""Runs one secure sum in process: relays messages stage by stage, records everything the
server receives, and simulates clients that drop out after a given stage."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from .base import Message, ProtocolError, RoundAborted, SumClient, SumOutcome, SumServer

log = logging.getLogger(__name__)


class Recorder(Protocol):
    def record(self, msg: Message) -> None: ...


@dataclass
class DropSchedule:
    """``drop_before[stage]`` = clients that vanish before sending their message for ``stage``."""

    drop_before: dict[str, set[str]] = field(default_factory=dict)

    def alive(self, stage: str, names: list[str], gone: set[str]) -> list[str]:
        gone |= self.drop_before.get(stage, set())
        return [n for n in names if n not in gone]


def process_stage(server: SumServer, stage: str, inbound: dict[str, Message],
                  gone: set[str]) -> dict[str, Message]:
    """The server's half of one stage, for any transport: a sender whose message is rejected is
    dropped (added to ``gone``) and the stage is processed again without it."""
    inbound = dict(inbound)
    while True:
        try:
            return server.process(stage, inbound)
        except ProtocolError as err:
            # Retry the stage without the offender; the server must not have applied any of
            # this stage's messages before raising.
            log.warning("%s", err)
            if err.sender not in inbound:
                raise
            inbound.pop(err.sender)
            gone.add(err.sender)


def run_secure_sum(
    server: SumServer,
    clients: dict[str, SumClient],
    recorder: Recorder,
    drops: DropSchedule | None = None,
) -> SumOutcome:
    """Drive every stage; a rejected sender is treated as dropped. Never raises RoundAborted:
    an aborted round comes back as ``SumOutcome(aborted=True)`` so the caller applies nothing."""
    drops = drops or DropSchedule()
    gone: set[str] = set()
    replies: dict[str, Message] = {}
    names = sorted(clients)
    try:
        for stage in server.stages:
            inbound: dict[str, Message] = {}
            for name in drops.alive(stage, names, gone):
                try:
                    msg = clients[name].respond(stage, replies.get(name))
                except ProtocolError as err:
                    # The client caught the server misbehaving: it stops taking part (its
                    # secrets stay with it); too few left and the round aborts below.
                    log.warning("client %s withdrew: %s", name, err)
                    gone.add(name)
                    continue
                if msg is None:
                    continue
                recorder.record(msg)
                inbound[name] = msg
            replies = process_stage(server, stage, inbound, gone)
        return server.outcome()
    except RoundAborted as err:
        log.warning("round %d aborted: %s", server.spec.round, err)
        return SumOutcome(contributors=(), total=None, aborted=True, reason=str(err), blamed=server.blamed())
