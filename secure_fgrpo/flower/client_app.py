"""The ClientApp: one institution's side of the secure sum, one handler per protocol stage.

Flower may start a new process for every message, so nothing lives in module globals: the
client object is restored from Context.state (state.py) before a stage and stored after it.
A refusal (bad parameters, a server caught cheating) is one line in the node's log and a
``withdrew`` reply; the node then keeps out of the round.
"""

from __future__ import annotations

import logging
from typing import cast

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from ..secure_sum import make_backend
from ..secure_sum.base import SERVER, ProtocolError
from ..secure_sum.base import Message as SumMessage
from ..secure_sum.masked.context import STAGES
from .codec import CodecError, RoundSetup
from .policy import NodePolicy, PolicyError
from .state import StateError, dump_client, load_client
from .synthetic import synthetic_input
from .wire import Envelope

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


@app.query("setup")
def setup(msg: Message, context: Context) -> Message:
    """Stage 0: check the round's public parameters against the local policy, then build the
    client and encode this node's input. Nothing secret has left the node yet."""
    policy = NodePolicy.from_node_config(context.node_config)
    env = Envelope.from_content(msg.content, "setup")
    try:
        round_setup = RoundSetup.from_bytes(env.payload)
        policy.check(round_setup, _last_round(context))
        backend = make_backend(round_setup.backend, {**round_setup.options, "roster": str(policy.roster),
                                                     "client_policies": {policy.name: policy.security}})
        client = backend.client(policy.name, round_setup.spec, policy.state_dir)
        client.set_input(synthetic_input(policy.input_seed, round_setup.spec))
    except (CodecError, PolicyError, ValueError) as err:
        return _withdraw(msg, context, env, policy.name, str(err))
    context.state["sfg-rounds"] = ConfigRecord({"last": round_setup.spec.round})
    context.state[_STATE] = ConfigRecord({"round": round_setup.spec.round, "client": dump_client(client)})
    return _reply(msg, Envelope(env.round, "setup", kind="ready"))


def _stage(msg: Message, context: Context) -> Message:
    policy = NodePolicy.from_node_config(context.node_config)
    stage = msg.metadata.message_type.split(".", 1)[1]
    env = Envelope.from_content(msg.content, stage)
    rec = context.state.get(_STATE) if _STATE in context.state else None
    if not isinstance(rec, ConfigRecord) or rec["round"] != env.round or env.stage != stage:
        return _withdraw(msg, context, env, policy.name, f"no protocol state for round {env.round}")
    try:
        client = load_client(cast(bytes, rec["client"]), policy.state_dir)  # written by dump_client
        inbound = (SumMessage(env.round, stage, SERVER, policy.name, env.kind, env.payload)
                   if env.kind else None)
        out = client.respond(stage, inbound)
    except (ProtocolError, StateError) as err:
        return _withdraw(msg, context, env, policy.name, str(err))
    if out is None:
        return _withdraw(msg, context, env, policy.name, "the server sent nothing for this stage")
    if stage == STAGES[-1]:
        del context.state[_STATE]  # round over: its secrets go with it
    else:
        context.state[_STATE] = ConfigRecord({"round": env.round, "client": dump_client(client)})
    return _reply(msg, Envelope(env.round, stage, kind=out.kind, payload=out.payload))


for _name in STAGES:
    app.query(_name)(_stage)
