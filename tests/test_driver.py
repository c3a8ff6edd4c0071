"""The in-process driver: rejected senders are dropped without double counting, a client that
catches the server misbehaving withdraws, and too few survivors abort the round cleanly."""

from __future__ import annotations

import numpy as np

from secure_fgrpo.secure_sum.base import Message, ProtocolError, SumSpec
from secure_fgrpo.secure_sum.driver import DropSchedule, run_secure_sum
from secure_fgrpo.secure_sum.plaintext import PlaintextClient, PlaintextServer


class _Log:
    def __init__(self) -> None:
        self.msgs: list[Message] = []

    def record(self, msg: Message) -> None:
        self.msgs.append(msg)


class _Withdrawing(PlaintextClient):
    """A client whose check of the server's message failed (as a real backend's would)."""

    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        raise ProtocolError("server", stage, "server reply failed verification")


def _spec(names: list[str], t: int) -> SumSpec:
    return SumSpec(round=1, dim=3, data_bound=10.0, weight_bound=10.0, participants=tuple(names), threshold=t)


def test_withdrawing_client_is_left_out_of_the_sum() -> None:
    spec = _spec(["a", "b", "c"], 2)
    clients = {"a": PlaintextClient("a", spec), "b": PlaintextClient("b", spec), "c": _Withdrawing("c", spec)}
    for n, c in clients.items():
        c.set_input(np.array([1.0, 2.0, 1.0]) * (1 + "abc".index(n)))
    log = _Log()
    out = run_secure_sum(PlaintextServer(spec), clients, log)
    assert out.contributors == ("a", "b") and np.allclose(out.total, [3.0, 6.0, 3.0])
    assert [m.sender for m in log.msgs] == ["a", "b"]


def test_rejected_sender_is_dropped_without_double_counting() -> None:
    spec = _spec(["a", "b"], 1)
    good, bad = PlaintextClient("a", spec), PlaintextClient("b", spec)
    good.set_input(np.array([1.0, 0.0, 2.0]))
    bad.set_input(np.array([0.0, 1.0, 1.0]))
    bad._vector = np.array([99.0, 0.0, 1.0])  # tampered after the client's own check
    out = run_secure_sum(PlaintextServer(spec), {"a": good, "b": bad}, _Log())
    assert out.contributors == ("a",) and np.allclose(out.total, [1.0, 0.0, 2.0])


def test_drop_schedule_removes_clients_before_their_stage() -> None:
    spec = _spec(["a", "b", "c"], 2)
    clients = {n: PlaintextClient(n, spec) for n in "abc"}
    for c in clients.values():
        c.set_input(np.array([1.0, 1.0, 1.0]))
    out = run_secure_sum(PlaintextServer(spec), clients, _Log(), DropSchedule({"input": {"b"}}))
    assert out.contributors == ("a", "c") and out.total[-1] == 2.0
