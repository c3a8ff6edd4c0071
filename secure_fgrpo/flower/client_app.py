"""The ClientApp: one institution's party (federation/party.py), one handler per protocol stage.

Flower may start a new process for every message, so nothing lives in module globals: the
client object is restored from Context.state (state.py) before a stage and stored after it.
A refusal (bad parameters, a server caught cheating) is one line in the node's log and a
``withdrew`` reply; the node then keeps out of the round.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from ..secure_sum.base import SERVER, ProtocolError
from ..secure_sum.base import Message as SumMessage
from ..secure_sum.masked.context import STAGES
from .codec import CodecError, RoundSetup
from .policy import NodePolicy, PolicyError
from .state import StateError, dump_client, load_client
from .wire import Envelope

if TYPE_CHECKING:
    from ..federation.party import Party

log = logging.getLogger(__name__)

app = ClientApp()
_STATE = "sfg-client"


def _reply(msg: Message, env: Envelope) -> Message:
    return Message(env.to_content(), reply_to=msg)


def _withdraw(msg: Message, context: Context, env: Envelope, name: str, reason: str) -> Message:
    log.warning("%s leaves round %d at %s: %s", name, env.round, env.stage, reason)
    if _STATE in context.state:
        del context.state[_STATE]
    return _reply(msg, Envelope(env.round, env.stage, withdrew=reason))


def _last_round(context: Context) -> int:
    rec = context.state.get("sfg-rounds") if "sfg-rounds" in context.state else None
    last = rec["last"] if isinstance(rec, ConfigRecord) else 0
    return last if isinstance(last, int) else 0


@app.query("hello")
def hello(msg: Message, context: Context) -> Message:
    """Say which institution this SuperNode is (its node config); the names are checked
    against the roster by the signatures of every later stage."""
    policy = NodePolicy.from_node_config(context.node_config)
    env = Envelope.from_content(msg.content, "hello")
    return _reply(msg, Envelope(env.round, "hello", kind="name", payload=policy.name.encode()))


def load_party(policy: NodePolicy, dim: int) -> Party:
    """This institution's party from its own config copy and data file. Why a function: what
    goes wrong there concerns the institution's own files (a path, a row's value) — the detail
    stays in this node's log, and the server, which reads a withdrawal's reason, gets one
    generic line. Refusals of the round's public parameters are named to the server as before."""
    from ..federation.node import node_party  # the training stack: here only

    if policy.config is None:
        raise PolicyError("node-config: 'config' (this institution's copy of the federation TOML) is required")
    try:
        return node_party(policy.config, policy.name, policy.state_dir,
                          {"roster": str(policy.roster), "client_policies": {policy.name: policy.security}},
                          dim, policy.data)
    except (OSError, ValueError) as err:
        log.warning("%s: its own config or data: %s", policy.name, err)
        raise PolicyError("this institution's own config or data could not be loaded (details in its log)") from None


@app.query("setup")
def setup(msg: Message, context: Context) -> Message:
    """Stage 0: check the round's public parameters against the local policy and the party's own
    federation config, train on the received global vector, and build the masked client with
    this institution's real ``[e·Δ, e]``. Nothing secret has left the node yet. The training
    stack is imported here only (a ClientApp process may be started per message)."""
    policy = NodePolicy.from_node_config(context.node_config)
    env = Envelope.from_content(msg.content, "setup")
    try:
        round_setup, vector = RoundSetup.unpack(env.payload)
        policy.check(round_setup, _last_round(context))
        if vector is None:
            raise PolicyError("setup.global_vector: the server sent no global vector to train from")
        from ..federation.node import contribute  # the training stack: here only

        party = load_party(policy, vector.size)
        done = contribute(party, round_setup, vector, policy.threads)
    except (CodecError, PolicyError, ValueError) as err:
        return _withdraw(msg, context, env, policy.name, str(err))
    context.state["sfg-rounds"] = ConfigRecord({"last": round_setup.spec.round})
    context.state[_STATE] = ConfigRecord({"round": round_setup.spec.round, "client": dump_client(done.client)})
    return _reply(msg, Envelope(env.round, "setup", kind="ready", seconds=done.sum_seconds,
                                train_seconds=done.train_seconds))


def _stage(msg: Message, context: Context) -> Message:
    policy = NodePolicy.from_node_config(context.node_config)
    stage = msg.metadata.message_type.split(".", 1)[1]
    env = Envelope.from_content(msg.content, stage)
    rec = context.state.get(_STATE) if _STATE in context.state else None
    if not isinstance(rec, ConfigRecord) or rec["round"] != env.round or env.stage != stage:
        return _withdraw(msg, context, env, policy.name, f"no protocol state for round {env.round}")
    try:
        raw = rec["client"]
        if not isinstance(raw, bytes):
            raise StateError("client state: not bytes")
        client = load_client(raw, policy.state_dir)
        inbound = (SumMessage(env.round, stage, SERVER, policy.name, env.kind, env.payload)
                   if env.kind else None)
        t0 = time.perf_counter()
        out = client.respond(stage, inbound)
        seconds = time.perf_counter() - t0
    except (ProtocolError, StateError) as err:
        return _withdraw(msg, context, env, policy.name, str(err))
    if out is None:
        return _withdraw(msg, context, env, policy.name, "the server sent nothing for this stage")
    if stage == STAGES[-1]:
        del context.state[_STATE]  # round over: its secrets go with it
    else:
        context.state[_STATE] = ConfigRecord({"round": env.round, "client": dump_client(client)})
    return _reply(msg, Envelope(env.round, stage, kind=out.kind, payload=out.payload, seconds=seconds))


for _name in STAGES:
    app.query(_name)(_stage)
