"""The server's transport seam: send one message per node, gather replies until a deadline.

Flower's own ``Grid.send_and_receive`` sleeps 3 s between pulls; this loop pulls every
``poll`` seconds (default 0.1 s) so a stage ends as soon as the last reply lands. A node whose
reply misses the deadline, or whose reply is a Flower error, is a dropout for the stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from .wire import Envelope, message_type

log = logging.getLogger(__name__)


@dataclass
class StageStats:
    """Wall time and payload bytes of one stage (what the benchmark reports)."""

    seconds: float = 0.0
    bytes_out: int = 0
    bytes_in: int = 0
    replies: int = 0
    missed: list[int] = field(default_factory=list)  # no reply (or a Flower error) by the deadline
    withdrew: list[int] = field(default_factory=list)  # replied that it leaves the round


class FlowerLink:
    def __init__(self, grid: Grid, poll: float = 0.1) -> None:
        self.grid = grid
        self.poll = poll

    def exchange(self, stage: str, round_: int, outbound: dict[int, Envelope],
                 timeout: float) -> tuple[dict[int, Envelope], StageStats]:
        """Send ``outbound[node_id]`` to each node; return the well-formed replies by node id."""
        stats = StageStats()
        start = time.perf_counter()
        msgs = []
        for node_id, env in outbound.items():
            stats.bytes_out += len(env.payload)
            msgs.append(Message(env.to_content(), dst_node_id=node_id, message_type=message_type(stage),
                                group_id=str(round_), ttl=max(timeout, 1.0) + 30.0))
        ids: dict[str, int] = {}
        for mid, msg in zip(self.grid.push_messages(msgs), msgs, strict=True):
            if mid is None:
                log.warning("node %d: the SuperLink refused the %s message: dropout", msg.metadata.dst_node_id, stage)
                stats.missed.append(msg.metadata.dst_node_id)
            else:
                ids[mid] = msg.metadata.dst_node_id
        got: dict[int, Envelope] = {}
        deadline = time.monotonic() + timeout
        while ids and time.monotonic() < deadline:
            for reply in self.grid.pull_messages(list(ids)):
                if reply.metadata.reply_to_message_id not in ids:
                    continue
                node_id = ids.pop(reply.metadata.reply_to_message_id)
                opened = self._open(reply, node_id, stage, round_)
                if opened is None:
                    stats.missed.append(node_id)
                elif opened.withdrew:
                    stats.withdrew.append(node_id)
                else:
                    stats.bytes_in += len(opened.payload)
                    got[node_id] = opened
            if ids:
                time.sleep(self.poll)
        for node_id in sorted(ids.values()):
            stats.missed.append(node_id)
            log.warning("node %d missed the %s deadline (%.0f s) of round %d: dropout", node_id, stage,
                        timeout, round_)
        stats.replies = len(got)
        stats.seconds = time.perf_counter() - start
        return got, stats

    @staticmethod
    def _open(reply: Message, node_id: int, stage: str, round_: int) -> Envelope | None:
        where = f"node {node_id}, round {round_}, stage {stage}"
        if reply.has_error():
            log.warning("%s: the ClientApp failed (%s): dropout", where, reply.error.reason)
            return None
        try:
            env = Envelope.from_content(reply.content if reply.has_content() else RecordDict(), where)
        except ValueError as err:
            log.warning("%s: %s: dropout", where, err)
            return None
        if (env.round, env.stage) != (round_, stage):
            log.warning("%s: reply is for round %d stage %r: dropout", where, env.round, env.stage)
            return None
        if env.withdrew:
            log.warning("%s: withdrew: %s", where, env.withdrew)
        return env
