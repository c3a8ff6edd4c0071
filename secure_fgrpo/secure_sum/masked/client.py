"""A client's side of one SecAgg+ round.

Every server message is checked before the client acts on it; anything wrong raises
:class:`ProtocolError` naming ``"server"`` and the stage. The client refuses, above all, to
reveal both the self-mask share and the mask-key share of the same peer, and reveals nothing
until at least t participants have acknowledged the same survivor set. Before its first message
it checks the round against its own policy (policy.py). A share its owner spoiled is not the
server's fault: the client files a complaint and carries on (blame.py).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..base import SERVER, Message, ProtocolError, SumClient
from . import crypto, shamir
from .blame import ShareInvalid, open_share, sealed_sign_parts, share_aad
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
    SharePlain,
    ShareUpload,
    SurvivorList,
    UnmaskRequest,
    UnmaskShares,
    decode,
)
from .policy import SecurityPolicy
from .prg import KeystreamPRG

log = logging.getLogger(__name__)

# What the server must send before each stage (None: nothing, the stage opens the round).
EXPECTED_REPLY = {"advertise": None, "share": KeyBook.KIND, "masked_input": Forwarded.KIND,
                  "consistency": SurvivorList.KIND, "unmask": UnmaskRequest.KIND}


def pair_info(ctx: RoundContext, a: str, b: str) -> bytes:
    lo, hi = sorted((a, b))
    return crypto.context("pair-mask", ctx.spec.round, ctx.digest, lo, hi)


def self_mask_seed(ctx: RoundContext, owner: str, b: bytes) -> bytes:
    return crypto.hkdf(b, crypto.context("self-mask", ctx.spec.round, ctx.digest, owner))


class MaskedClient(SumClient):
    def __init__(self, name: str, ctx: RoundContext, identity: Ed25519PrivateKey | None,
                 policy: SecurityPolicy | None = None) -> None:
        super().__init__(name, ctx.spec)
        if name not in ctx.spec.participants:
            raise ValueError(f"{name!r} is not a participant of round {ctx.spec.round}")
        if ctx.signed and identity is None:
            raise ValueError(f"{name}: a roster is configured but no identity key was given")
        self.ctx = ctx
        self.policy = policy or SecurityPolicy()
        self.graph: Graph | None = None  # drawn from every advertisement at the share stage
        self._identity = identity
        self._keys = crypto.RoundKeys.generate()
        self._advert: tuple[bytes, bytes, bytes] = (b"", b"", b"")  # what it advertised (public)
        self._next = 0
        self._out = False
        self._words: np.ndarray | None = None  # the encoded input (secret until masked)
        self._prg = KeystreamPRG(ctx.params.prg, ctx.spec.dim, ctx.fixed.word)
        self._book: dict[str, tuple[bytes, bytes]] = {}
        self._enc_keys: dict[str, bytes] = {}
        self._c_shared: dict[str, bytes] = {}  # raw X25519 with each neighbour's c key (secret)
        self._held: dict[str, SharePlain] = {}
        self._masked_with: tuple[str, ...] = ()
        self._self_seed: bytes | None = None
        self._survivors: tuple[str, ...] | None = None
        self._revealed: dict[str, str] = {}  # peer -> "self" | "key": the one thing revealed
        self.timings: dict[str, float] = {}
        self.bytes_sent = 0
        self.bytes_received = 0

    def __repr__(self) -> str:
        return f"MaskedClient({self.name!r}, round={self.spec.round})"

    def set_input(self, vector: np.ndarray) -> None:
        """Check the bounds and encode at once (stochastic rounding from a fresh keystream), so
        the float vector is neither kept nor copied. With integer DP noise in the round, round
        at the noise's scale and add this client's noise share to the words before masking."""
        vector = self.spec.check_input(vector, self.name)
        start = time.perf_counter()
        noise = self.ctx.noise
        if noise is None:
            self._words = self.ctx.fixed.encode(vector, self._prg.dither(os.urandom(32)))
        else:
            ints = noise.round(vector)
            ints += noise.sample(ints.size)
            self._words = ints.astype(self.ctx.fixed.word)  # two's complement: mod 2^bits
        self.timings["encode"] = time.perf_counter() - start

    # --- driver entry point ----------------------------------------------------------------

    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        if self._out:
            return None
        if self._next >= len(STAGES) or stage != STAGES[self._next]:
            expected = STAGES[self._next] if self._next < len(STAGES) else "(round finished)"
            raise ProtocolError(SERVER, stage, f"out of stage: {self.name} expected {expected!r}")
        self._next += 1
        want = EXPECTED_REPLY[stage]
        if want is None:
            if inbound is not None:
                raise ProtocolError(SERVER, stage, "unexpected message before the round opened")
            body = None
        elif inbound is None:
            log.info("%s: no %s from the server at %s; leaving the round", self.name, want, stage)
            self._out = True
            return None
        else:
            body = self._open(stage, inbound, want)
            self.bytes_received += len(inbound.payload)
        start = time.perf_counter()
        out = getattr(self, f"_stage_{stage}")(stage, body)
        self.timings[stage] = time.perf_counter() - start
        payload = out.to_bytes()
        self.bytes_sent += len(payload)
        return Message(self.spec.round, stage, self.name, SERVER, out.KIND, payload)

    def _open(self, stage: str, msg: Message, kind: str) -> Any:
        checks = ((msg.sender == SERVER, f"sender is {msg.sender!r}, not the server"),
                  (msg.recipient == self.name, f"addressed to {msg.recipient!r}"),
                  (msg.round == self.spec.round, f"round {msg.round} (replay from another round?)"),
                  (msg.stage == stage, f"message is for stage {msg.stage!r}"),
                  (msg.kind == kind, f"kind {msg.kind!r}, expected {kind!r}"))
        for ok, reason in checks:
            if not ok:
                raise ProtocolError(SERVER, stage, reason)
        try:
            return decode(kind, msg.payload)
        except DecodeError as err:
            raise ProtocolError(SERVER, stage, str(err)) from None

    def _refuse(self, stage: str, reason: str) -> ProtocolError:
        return ProtocolError(SERVER, stage, reason)

    def _sign(self, what: str, *parts: bytes) -> bytes:
        if self._identity is None:
            return b""
        return self._identity.sign(self.ctx.sign_bytes(what, *parts))

    def _signature_ok(self, signer: str, signature: bytes, what: str, *parts: bytes) -> bool:
        if self.ctx.roster is None:
            return signature == b""
        return verify(self.ctx.roster[signer], signature, self.ctx.sign_bytes(what, *parts))

    def _check_advert(self, stage: str, peer: str, advert: tuple[bytes, bytes, bytes]) -> None:
        c_pub, s_pub, sig = advert
        if not self._signature_ok(peer, sig, "advertise", peer.encode(), c_pub, s_pub):
            raise self._refuse(stage, f"advertisement of {peer!r} is not signed by its roster key")

    # --- stages ----------------------------------------------------------------------------

    def _stage_advertise(self, stage: str, _: None) -> Advertise:
        self.policy.admit(self.spec, self.ctx.graph_params, stage)  # before anything leaves
        c, s = self._keys.c_public, self._keys.s_public
        self._advert = (c, s, self._sign("advertise", self.name.encode(), c, s))
        return Advertise(*self._advert)

    def _stage_share(self, stage: str, book: KeyBook) -> ShareUpload:
        ctx, me = self.ctx, self.name
        ads: dict[str, tuple[bytes, bytes, bytes]] = {}
        for peer, c_pub, s_pub, sig in book.entries:
            if peer in ads:
                raise self._refuse(stage, f"key book lists {peer!r} twice")
            if not ctx.is_participant(peer):
                raise self._refuse(stage, f"key book lists {peer!r}, which is not a participant")
            if c_pub == s_pub:
                raise self._refuse(stage, f"{peer!r} advertised the same key twice")
            ads[peer] = (c_pub, s_pub, sig)
        if me not in ads or ads[me] != self._advert:
            raise self._refuse(stage, f"key book carries a different advertisement for {me!r}")
        missing = [a for a in ctx.anchors if a not in ads]
        if missing:
            raise self._refuse(stage, f"key book lacks the advertisement of anchor(s) {', '.join(missing)}: "
                                      f"the graph is drawn from every anchor's")
        for peer in ctx.anchors:
            self._check_advert(stage, peer, ads[peer])
        self.graph = ctx.build_graph(graph_seed(ctx.digest, [(a, *ads[a]) for a in ctx.anchors]))
        mine = self.graph.neighbours[me]
        stray = sorted(set(ads) - mine - set(ctx.anchors) - {me})
        if stray:
            raise self._refuse(stage, f"key book lists {stray[0]!r}, neither an anchor nor a neighbour of {me!r}")
        for peer in sorted(mine & set(ads)):
            c_pub, s_pub, sig = ads[peer]
            if peer not in ctx.anchors:
                self._check_advert(stage, peer, ads[peer])
            try:
                self._c_shared[peer] = crypto.shared_secret(self._keys.c_private, c_pub)
                self._enc_keys[peer] = crypto.hkdf(self._c_shared[peer], share_aad(ctx, me, peer))
            except crypto.CryptoError:
                raise self._refuse(stage, f"advertised key of {peer!r} is invalid") from None
            self._book[peer] = (c_pub, s_pub)
        holders = [me, *sorted(self._book)]
        if len(holders) < ctx.graph_params.share_threshold:
            raise self._refuse(stage, f"key book has {len(holders) - 1} neighbour(s); {me!r} needs "
                                      f"{ctx.graph_params.share_threshold - 1} to share its secrets")
        b = os.urandom(32)
        self._self_seed = b
        xs = [ctx.index(h) for h in holders]
        t_k = ctx.graph_params.share_threshold
        b_shares = shamir.split(b, xs, t_k)
        k_shares = shamir.split(self._keys.s_secret_bytes(), xs, t_k)
        entries = []
        for holder, bs, ks in zip(holders, b_shares, k_shares, strict=True):
            plain = SharePlain(me, holder, bs.to_bytes(), ks.to_bytes())
            if holder == me:
                self._held[me] = plain
                continue
            key, aad = self._enc_keys[holder], share_aad(ctx, me, holder)
            blob = crypto.seal(key, plain.to_bytes(), aad)
            confirm = crypto.confirm_tag(key, aad)
            entries.append((holder, blob, confirm,
                            self._sign("sealed", *sealed_sign_parts(me, holder, blob, confirm))))
        return ShareUpload(crypto.commit(b, ctx.spec.round, ctx.digest, me), tuple(entries))

    def _stage_masked_input(self, stage: str, fwd: Forwarded) -> MaskedInput:
        ctx, me = self.ctx, self.name
        if self._words is None:
            raise RuntimeError(f"{me}: set_input was not called before the masked_input stage")
        complaints: list[tuple[str, bytes]] = []
        for owner, blob, confirm, sig in fwd.entries:
            if owner in self._held or owner in {o for o, _ in complaints}:
                raise self._refuse(stage, f"forwarded shares list {owner!r} twice")
            if owner not in self._book:
                raise self._refuse(stage, f"forwarded share from {owner!r}, which is not in the key book")
            if not self._signature_ok(owner, sig, "sealed", *sealed_sign_parts(owner, me, blob, confirm)):
                raise self._refuse(stage, f"sealed share from {owner!r} is not signed by {owner!r}")
            key = crypto.hkdf(self._c_shared[owner], share_aad(ctx, owner, me))  # the other direction
            try:
                if crypto.confirm_tag(key, share_aad(ctx, owner, me)) != confirm:
                    raise ShareInvalid(f"sealed share from {owner!r} confirms another key")
                self._held[owner] = open_share(ctx, key, blob, owner, me)
            except ShareInvalid as err:
                # The owner spoiled its own share: leave it out and say so, with the pair key
                # (it protects only this ciphertext) so the server can check the owner's
                # signature (blame.py). Withdrawing would let one client stop every round.
                log.warning("%s: %s; complaining", me, err)
                complaints.append((owner, key))
        self._masked_with = tuple(sorted(o for o in self._held if o != me))
        if len(self._held) < ctx.graph_params.share_threshold:
            raise self._refuse(stage, f"only {len(self._held) - 1} neighbour(s) hold {me!r}'s shares; "
                                      f"its input could never be unmasked")
        words, filed = self._mask().tobytes(), tuple(complaints)
        return MaskedInput(words, filed, self._sign("masked", *ctx.masked_parts(me, words, filed)))

    def _mask(self) -> np.ndarray:
        """Add the self mask and the pairwise masks to the encoded input (mod 2^bits)."""
        ctx, me, words = self.ctx, self.name, self._words
        assert words is not None and self._self_seed is not None
        self._prg.add_into(words, self_mask_seed(ctx, me, self._self_seed), +1)
        for peer in self._masked_with:
            seed = crypto.agree(self._keys.s_private, self._book[peer][1], pair_info(ctx, me, peer))
            self._prg.add_into(words, seed, +1 if me < peer else -1)
        self._words = None  # masked: nothing secret left in it
        return words

    def _stage_consistency(self, stage: str, lst: SurvivorList) -> ConsistencyAck:
        ctx, me = self.ctx, self.name
        names = list(lst.names)
        if len(set(names)) != len(names):
            raise self._refuse(stage, "survivor list has duplicates")
        stray = [n for n in names if not ctx.is_participant(n)]
        if stray:
            raise self._refuse(stage, f"survivor list names non-participant(s) {stray}")
        if me not in names:
            raise self._refuse(stage, f"survivor list omits {me!r}, which sent its masked input")
        if len(names) < ctx.spec.threshold:
            raise self._refuse(stage, f"survivor list has {len(names)} names, below the threshold "
                                      f"{ctx.spec.threshold}")
        assert self.graph is not None
        mine, masked_with = self.graph.neighbours[me], set(self._masked_with)
        for n in names:
            if n in mine and n not in masked_with:
                raise self._refuse(stage, f"survivor list names {n!r}, which never shared keys with {me!r}")
        self._check_neighbourhoods(stage, set(names))
        self._survivors = tuple(sorted(names))
        digest = ctx.survivors_digest(self._survivors, self.graph.seed)
        return ConsistencyAck(digest, self._sign("ack", digest))

    def _check_neighbourhoods(self, stage: str, agreed: set[str]) -> None:
        """Refuse a survivor set that keeps fewer than t_k - 1 neighbours of any survivor whose
        shares this client holds (itself included): its seed could never be recovered (only
        holders inside the set answer), so the round is doomed; refusing now keeps this client
        from revealing mask-key shares of peers the server calls dropped in such a round."""
        assert self.graph is not None
        t_k = self.ctx.graph_params.share_threshold
        for v in sorted(agreed & set(self._held)):
            kept = len(self.graph.neighbours[v] & agreed)
            if kept < t_k - 1:
                # The graph and the set are public: every honest holder of v refuses alike.
                raise self._refuse(stage, f"survivor list keeps {kept} of {v!r}'s neighbours; "
                                          f"revealing {v!r}'s shares needs {t_k - 1}")

    def _stage_unmask(self, stage: str, req: UnmaskRequest) -> UnmaskShares:
        ctx = self.ctx
        assert self._survivors is not None
        if tuple(sorted(req.names)) != self._survivors or len(req.names) != len(self._survivors):
            raise self._refuse(stage, "survivor set differs from the one acknowledged at consistency")
        assert self.graph is not None
        digest = ctx.survivors_digest(self._survivors, self.graph.seed)
        signers: set[str] = set()
        survivors = set(self._survivors)
        for signer, d, sig in req.acks:
            if signer in signers or signer not in survivors:
                raise self._refuse(stage, f"acknowledgement from {signer!r} is duplicated or not a survivor's")
            if d != digest or not self._signature_ok(signer, sig, "ack", d):
                raise self._refuse(stage, f"acknowledgement of {signer!r} does not sign this survivor set")
            signers.add(signer)
        if len(signers) < ctx.spec.threshold:
            raise self._refuse(stage, f"{len(signers)} acknowledgement(s) of the survivor set, need "
                                      f"{ctx.spec.threshold}")
        return self._reveal(stage, list(req.self_requests), list(req.key_requests))

    def _reveal(self, stage: str, want_self: list[str], want_key: list[str]) -> UnmaskShares:
        """Reveal one share per peer, never both kinds, and only what the agreed set allows."""
        assert self._survivors is not None
        for kind, peers in (("self", want_self), ("key", want_key)):
            if len(set(peers)) != len(peers):
                raise self._refuse(stage, f"unmask request lists a peer twice for the {kind} share")
        both = sorted(set(want_self) & set(want_key))
        if both:
            raise self._refuse(stage, f"asked for both the self-mask share and the mask-key share of "
                                      f"{both[0]!r}; refusing")
        for peer, kind in [(p, "self") for p in want_self] + [(p, "key") for p in want_key]:
            if self._revealed.get(peer, kind) != kind:
                raise self._refuse(stage, f"already revealed the other share of {peer!r}; refusing")
        for peer in want_self + want_key:
            if peer not in self._held:
                raise self._refuse(stage, f"unmask request asks for a share of {peer!r}, which {self.name!r} "
                                          f"does not hold")
        survivors = set(self._survivors)
        for peer in want_self:
            if peer not in survivors:
                raise self._refuse(stage, f"self-mask share of {peer!r} requested, but it is not a survivor")
        for peer in want_key:
            if peer in survivors or peer == self.name:
                raise self._refuse(stage, f"mask-key share of {peer!r} requested, but its input is in the sum")
        for peer in want_self:
            self._revealed[peer] = "self"
        for peer in want_key:
            self._revealed[peer] = "key"
        return UnmaskShares(tuple((p, self._held[p].self_share) for p in sorted(want_self)),
                            tuple((p, self._held[p].key_share) for p in sorted(want_key)))
