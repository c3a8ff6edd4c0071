"""The server's side of one SecAgg+ round: routes keys and sealed shares, sums masked words,
and removes the masks of survivors (self masks) and of dropped clients (pairwise masks).

Every stage validates all of its messages first and raises :class:`ProtocolError` naming the
first offender before touching any state, as the driver expects. Survivor sets shrink by a
fixed-point rule: a client whose secrets have fewer than ``t_k`` live holders can never be
unmasked, so it is excluded early rather than breaking the round later.

Replays and copies are caught by payload fingerprint: a payload already accepted in this round
is a replay; of two identical payloads in one stage the later sender (by name) is rejected
(the transport authenticates senders; signed stages also fail the signature check).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..base import SERVER, Message, ProtocolError, RoundAborted, SumOutcome, SumServer
from . import crypto, shamir
from .blame import Verdicts, judge, sealed_sign_parts
from .client import pair_info, self_mask_seed
from .context import STAGES, RoundContext
from .graph import Graph, graph_seed
from .keys import verify
from .messages import (
    Advertise,
    ConsistencyAck,
    DecodeError,
    Forwarded,
    KeyBook,
    MaskedInput,
    ShareUpload,
    SurvivorList,
    UnmaskRequest,
    UnmaskShares,
    Wire,
    decode,
)
from .prg import KeystreamPRG

log = logging.getLogger(__name__)

KINDS: dict[str, type[Wire]] = {"advertise": Advertise, "share": ShareUpload, "masked_input": MaskedInput,
         "consistency": ConsistencyAck, "unmask": UnmaskShares}


def _fingerprint(payload: bytes) -> bytes:
    """Cheap identity of a message for replay detection (big vectors: head and tail)."""
    if len(payload) > 1 << 16:
        return hashlib.sha256(len(payload).to_bytes(8, "big") + payload[:4096] + payload[-4096:]).digest()
    return hashlib.sha256(payload).digest()


def _sealed_len(owner: str, holder: str) -> int:
    plain = 5 + 1 + len(owner.encode()) + 1 + len(holder.encode()) + 2 * shamir.SHARE_BYTES
    return crypto.NONCE_BYTES + plain + crypto.TAG_BYTES


class MaskedServer(SumServer):
    stages = STAGES

    def __init__(self, ctx: RoundContext) -> None:
        super().__init__(ctx.spec)
        self.ctx = ctx
        self._next = 0
        self._seen: dict[bytes, str] = {}
        self._prints: dict[str, bytes] = {}
        self._adv: dict[str, Advertise] = {}
        self._live: set[str] = set(ctx.spec.participants)  # who may send at the next stage
        self._uploads: dict[str, ShareUpload] = {}
        self._sharers: set[str] = set()
        self._total = np.zeros(ctx.spec.dim, dtype=ctx.fixed.word)
        self._survivors: tuple[str, ...] = ()
        self._acks: dict[str, ConsistencyAck] = {}
        self._asked: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._outcome: SumOutcome | None = None
        self.graph: Graph | None = None  # drawn once every participant has advertised
        self._blamed: dict[str, str] = {}  # provable misbehaviour, kept across a stage's retries
        self._verdicts = Verdicts()
        self.timings: dict[str, float] = {}

    # --- driver entry point ----------------------------------------------------------------

    def process(self, stage: str, inbound: dict[str, Message]) -> dict[str, Message]:
        expected = STAGES[self._next] if self._next < len(STAGES) else None
        if stage != expected:
            first = min(inbound) if inbound else None
            reason = (f"stage {stage!r} already completed (replayed message)" if stage in STAGES[:self._next]
                      else f"out of stage: the server expects {expected!r}")
            if first is None:
                raise RuntimeError(f"process({stage!r}) called out of order: {reason}")
            raise ProtocolError(first, stage, reason)
        start = time.perf_counter()
        # Unsigned acknowledgements are legitimately identical; everything else carries fresh
        # randomness, so an identical payload is a replay or a copy (checked by each stage
        # after its own validation, so that a copier fails its signature check first).
        fresh = stage != "consistency" or self.ctx.signed
        self._prints = {s: _fingerprint(m.payload) for s, m in sorted(inbound.items())} if fresh else {}
        bodies = {s: self._check(stage, s, m) for s, m in sorted(inbound.items())}
        handler: Callable[[str, dict[str, Any]], dict[str, Any]] = getattr(self, f"_stage_{stage}")
        replies = handler(stage, bodies)  # validates semantics first, then commits
        for s, fp in self._prints.items():
            self._seen[fp] = s
        self._next += 1
        nxt = STAGES[self._next] if self._next < len(STAGES) else ""
        out = {r: Message(self.spec.round, nxt, SERVER, r, body.KIND, body.to_bytes())
               for r, body in sorted(replies.items())}
        self.timings[stage] = time.perf_counter() - start
        return out

    def _check(self, stage: str, sender: str, msg: Message) -> Any:
        cls = KINDS[stage]
        checks = ((msg.sender == sender, f"message claims sender {msg.sender!r}"),
                  (self.ctx.is_participant(sender), "not a participant of this round"),
                  (msg.recipient == SERVER, f"addressed to {msg.recipient!r}"),
                  (msg.round == self.spec.round, f"round {msg.round}, expected {self.spec.round} (replay?)"),
                  (msg.stage == stage, f"message is for stage {msg.stage!r} (out of stage)"),
                  (msg.kind == cls.KIND, f"kind {msg.kind!r}, expected {cls.KIND!r}"),
                  (sender in self._live, "not expected at this stage (dropped or excluded earlier)"))
        for ok, reason in checks:
            if not ok:
                raise ProtocolError(sender, stage, reason)
        fp = self._prints.get(sender)
        if fp is not None and fp in self._seen:
            raise ProtocolError(sender, stage, f"replays a message already received from {self._seen[fp]!r}")
        try:
            return decode(cls.KIND, msg.payload)
        except DecodeError as err:
            raise ProtocolError(sender, stage, str(err)) from None

    def _no_replays(self, stage: str) -> None:
        """Reject a payload sent by two senders in this stage (earlier stages: see _check)."""
        first: dict[bytes, str] = {}
        for s, fp in self._prints.items():
            if fp in first:
                raise ProtocolError(s, stage, f"duplicates the message of {first[fp]!r}")
            first[fp] = s

    def _need(self, names: set[str] | list[str], what: str) -> None:
        if len(names) < self.spec.threshold:
            raise RoundAborted(f"round {self.spec.round}: only {len(names)} client(s) {what}; "
                               f"threshold is {self.spec.threshold}")

    def _g(self) -> Graph:
        if self.graph is None:
            raise RuntimeError("the graph is drawn at the advertise stage")
        return self.graph

    def _closure(self, alive: set[str]) -> set[str]:
        """Drop clients with fewer than t_k live holders until none is left to drop."""
        g = self._g()
        alive = set(alive)
        while True:
            weak = {u for u in alive if len(g.holders(u) & alive) < g.share_threshold}
            if not weak:
                return alive
            log.info("excluding %s: too few live share holders", sorted(weak))
            alive -= weak

    # --- stages ----------------------------------------------------------------------------

    def _stage_advertise(self, stage: str, bodies: dict[str, Advertise]) -> dict[str, KeyBook]:
        keys: dict[bytes, str] = {}
        for s, adv in bodies.items():
            if not self._signed_ok(s, adv.signature, "advertise", s.encode(), adv.c_public, adv.s_public):
                raise ProtocolError(s, stage, "advertisement signature does not verify against the roster")
            reason = ""
            if adv.c_public == adv.s_public:
                reason = "the two advertised keys are identical"
            for k in (adv.c_public, adv.s_public):
                if reason:
                    break
                if k in keys:
                    reason = f"advertised key already advertised by {keys[k]!r}"
                keys[k] = s
                try:
                    X25519PrivateKey.generate().exchange(crypto.public_key(k, "advertised key"))
                except ValueError:
                    reason = "advertised key is invalid (low order)"
            if reason:
                if self.ctx.signed:  # signed by its own identity key: provable, excluded later
                    self._blamed.setdefault(s, f"round {self.spec.round}: signed an advertisement where {reason}")
                raise ProtocolError(s, stage, reason)
        self._no_replays(stage)
        missing = [a for a in self.ctx.anchors if a not in bodies]
        if missing:
            raise RoundAborted(f"round {self.spec.round}: anchor(s) {', '.join(missing)} did not advertise; the "
                               f"neighbour graph is drawn from every anchor's advertisement")
        self._adv = dict(bodies)
        entry = {v: (v, a.c_public, a.s_public, a.signature) for v, a in self._adv.items()}
        self.graph = self.ctx.build_graph(graph_seed(self.ctx.digest, [entry[a] for a in self.ctx.anchors]))
        self._live = self._closure(set(bodies))
        self._need(self._live, "advertised keys")
        # Each client gets the anchors' advertisements (to draw the graph) and its neighbours'.
        order, anchor_set = self.ctx.index, set(self.ctx.anchors)
        return {u: KeyBook(tuple(entry[v] for v in sorted((anchor_set | self.graph.holders(u)) & set(entry),
                                                         key=order)))
                for u in self._live}

    def _signed_ok(self, signer: str, signature: bytes, what: str, *parts: bytes) -> bool:
        if self.ctx.roster is None:
            return signature == b""
        return verify(self.ctx.roster[signer], signature, self.ctx.sign_bytes(what, *parts))

    def _stage_share(self, stage: str, bodies: dict[str, ShareUpload]) -> dict[str, Forwarded]:
        g = self._g()
        for s, up in bodies.items():
            want = g.neighbours[s] & self._live
            got = [e[0] for e in up.entries]
            if len(set(got)) != len(got):
                raise ProtocolError(s, stage, "two sealed shares for the same holder")
            if set(got) != want:
                raise ProtocolError(s, stage, f"sealed shares for {sorted(got)}, expected {sorted(want)}")
            for r, blob, confirm, sig in up.entries:
                if len(blob) != _sealed_len(s, r):
                    raise ProtocolError(s, stage, f"sealed share for {r!r} has {len(blob)} bytes")
                if not self._signed_ok(s, sig, "sealed", *sealed_sign_parts(s, r, blob, confirm)):
                    raise ProtocolError(s, stage, f"sealed share for {r!r} is not signed by {s!r}")
        self._no_replays(stage)
        self._uploads = dict(bodies)
        self._sharers = self._closure(set(bodies))
        self._live = set(self._sharers)
        self._need(self._live, "shared their keys")
        sealed = {(s, e[0]): e[1:] for s, up in self._uploads.items() for e in up.entries}
        return {v: Forwarded(tuple((u, *sealed[(u, v)]) for u in sorted(g.neighbours[v] & self._sharers)))
                for v in self._live}

    def _stage_masked_input(self, stage: str, bodies: dict[str, MaskedInput]) -> dict[str, SurvivorList]:
        nbytes = self.spec.dim * self.ctx.fixed.word.itemsize
        for s, mi in bodies.items():
            if len(mi.words) != nbytes:
                raise ProtocolError(s, stage, f"masked vector has {len(mi.words)} bytes, expected {nbytes}")
            if not self._signed_ok(s, mi.signature, "masked", *self.ctx.masked_parts(s, mi.words, mi.complaints)):
                raise ProtocolError(s, stage, "masked input signature does not verify against the roster")
        verdicts = Verdicts()
        for s, mi in bodies.items():
            judge(self.ctx, stage, s, mi.complaints, self._uploads, self._g().neighbours[s], verdicts)
        self._no_replays(stage)
        self._verdicts = verdicts
        self._blamed.update(verdicts.blamed)
        if verdicts.excluded():
            log.warning("round %d: leaving %s out of the sum (blamed: %s; disputes: %s)", self.spec.round,
                        sorted(verdicts.excluded()), sorted(verdicts.blamed), sorted(verdicts.disputes))
        kept = {s: mi for s, mi in bodies.items() if s not in verdicts.excluded()}
        for mi in kept.values():
            np.add(self._total, np.frombuffer(mi.words, dtype=self.ctx.fixed.word), out=self._total)
        self._survivors = tuple(sorted(kept))
        self._live = set(kept)
        self._need(self._live, "sent a masked input")
        return {u: SurvivorList(self._survivors) for u in self._survivors}

    def _stage_consistency(self, stage: str, bodies: dict[str, ConsistencyAck]) -> dict[str, UnmaskRequest]:
        digest = self.ctx.survivors_digest(self._survivors, self._g().seed)
        for s, ack in bodies.items():
            if ack.digest != digest:
                raise ProtocolError(s, stage, "acknowledges a different survivor set")
            if not self._signed_ok(s, ack.signature, "ack", ack.digest):
                raise ProtocolError(s, stage, "acknowledgement signature does not verify against the roster")
        self._no_replays(stage)
        self._acks = dict(bodies)
        self._live = set(bodies)
        self._need(self._live, "acknowledged the survivor set")
        # T acknowledgements are what a client needs (quorum intersection); more cost it checks.
        acks = tuple((s, a.digest, a.signature) for s, a in sorted(self._acks.items()))[: self.spec.threshold]
        out = {}
        for u in sorted(self._live):
            self._asked[u] = self._requests_for(u)
            out[u] = UnmaskRequest(self._survivors, acks, *self._asked[u])
        return out

    def _dropped(self) -> list[str]:
        """Sharers that never sent a masked input but masked with at least one survivor."""
        g, surv, unpaired = self._g(), set(self._survivors), self._verdicts.unpaired
        return sorted(d for d in self._sharers - surv if any((d, v) not in unpaired for v in g.neighbours[d] & surv))

    def _requests_for(self, u: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        held = ({u} | self._g().neighbours[u]) & self._sharers
        held -= {o for o, h in self._verdicts.unpaired if h == u}  # u left these owners out
        return tuple(sorted(held & set(self._survivors))), tuple(sorted(held & set(self._dropped())))

    def _stage_unmask(self, stage: str, bodies: dict[str, UnmaskShares]) -> dict[str, Any]:
        x_of = self.ctx.index
        shares: dict[tuple[str, str], list[shamir.Share]] = {}
        for s, us in bodies.items():
            want_self, want_key = self._asked[s]
            for kind, entries, want in (("self", us.self_shares, want_self), ("key", us.key_shares, want_key)):
                peers = [p for p, _ in entries]
                if sorted(peers) != list(want) or len(set(peers)) != len(peers):
                    raise ProtocolError(s, stage, f"{kind}-mask shares for {sorted(peers)}, expected {list(want)}")
                for p, raw in entries:
                    try:
                        shares.setdefault((kind, p), []).append(shamir.Share.from_bytes(x_of(s), raw))
                    except shamir.ShamirError as err:
                        raise ProtocolError(s, stage, f"share of {p!r}: {err}") from None
        self._no_replays(stage)
        self._need(set(bodies), "sent their unmasking shares")
        self._unmask(shares)
        return {}

    def _recover(self, shares: dict[tuple[str, str], list[shamir.Share]], kind: str, peer: str) -> bytes:
        """The secret, checked against the owner's public commitment (seed) or advertised key;
        a share off the polynomial that checks out is a ProtocolError naming its holder."""
        got = shares.get((kind, peer), [])
        t_k = self.ctx.graph_params.share_threshold
        what = "self-mask seed" if kind == "self" else "mask key"
        if len(got) < t_k:
            raise RoundAborted(f"round {self.spec.round}: {len(got)} share(s) of {peer!r}'s {what}, need {t_k}")
        ctx = self.ctx
        if kind == "self":
            def valid(secret: bytes) -> bool:
                return crypto.commit(secret, ctx.spec.round, ctx.digest, peer) == self._uploads[peer].commitment
        else:
            def valid(secret: bytes) -> bool:
                return crypto.public_of(secret) == self._adv[peer].s_public
        secret, bad = shamir.recover_checked(got, t_k, valid)
        if bad:
            holder = self.spec.participants[bad[0] - 1]
            raise ProtocolError(holder, "unmask", f"share of {peer!r}'s {what} is off the polynomial that "
                                                  f"matches {peer!r}'s public commitment")
        if secret is None:
            raise RoundAborted(f"round {self.spec.round}: no {t_k} shares of {peer!r}'s {what} match its "
                               f"public commitment (holders returned wrong shares)")
        return secret

    def _unmask(self, shares: dict[tuple[str, str], list[shamir.Share]]) -> None:
        """Recover every secret first (may reject a holder: nothing changed yet), then apply."""
        ctx, g = self.ctx, self._g()
        seeds = {w: self._recover(shares, "self", w) for w in self._survivors}
        keys = {d: self._recover(shares, "key", d) for d in self._dropped()}
        prg = KeystreamPRG(ctx.params.prg, ctx.spec.dim, ctx.fixed.word)
        for w, b in seeds.items():
            prg.add_into(self._total, self_mask_seed(ctx, w, b), -1)
        surv = set(self._survivors)
        for d, sk in keys.items():
            private = crypto.private_key(sk)
            for v in sorted(g.neighbours[d] & surv):
                if (d, v) in self._verdicts.unpaired:
                    continue  # v complained about d and never masked with it
                seed = crypto.agree(private, self._adv[v].s_public, pair_info(ctx, d, v))
                prg.add_into(self._total, seed, -1 if v < d else +1)  # undo v's ±mask
        total = ctx.fixed.decode(self._total)
        self._outcome = SumOutcome(
            contributors=self._survivors, total=total, blamed=dict(self._blamed),
            stats={"degree": float(g.degree), "share_threshold": float(g.share_threshold),
                   "dropped_after_sharing": float(len(keys)),
                   "quantisation_bound": ctx.fixed.error_bound(len(self._survivors)),
                   "modulus_bits": float(ctx.fixed.bits)})

    def blamed(self) -> dict[str, str]:
        return dict(self._blamed)

    def outcome(self) -> SumOutcome:
        if self._outcome is None:
            raise RuntimeError("outcome() called before the unmask stage completed")
        return self._outcome
