"""PubSwap's exchange: a party seals its offers to every other participant (``SwapParty``) and
the server relays each recipient's blobs in the next round's stage 0 (``Relay``), never able to
open one (sealed.py). One round of lag, no extra round trip: the blobs of round r travel with
round r's contribution and arrive with round r+1's setup.

Message kinds (audit/inventory.py): ``sealed-responses`` (party -> server, stage ``pubswap``:
``others x prompts x responses`` blobs of one fixed size) and ``pubswap-relay`` (server ->
party, stage ``setup``: the blobs addressed to it, labelled with their senders).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..config import RunConfig
from ..fileio import write_private
from ..secure_sum.base import SERVER, Message, client_state_dir
from ..secure_sum.identity import ensure_party, load_roster_entries
from .public_set import PublicSet, is_exchange_round
from .pubswap import PubSwapJob
from .sealed import (
    Offer,
    SealError,
    decode_record,
    encode_record,
    open_records,
    others,
    pack_relay,
    seal_records,
    split_message,
    unpack_relay,
)

log = logging.getLogger(__name__)
SEALED_KIND, RELAY_KIND = "sealed-responses", "pubswap-relay"
SEALED_STAGE, RELAY_STAGE = "pubswap", "setup"


def slots(cfg: RunConfig) -> int:
    """Blobs per recipient per exchange: fixed, whatever a client has to offer."""
    return cfg.pubswap.prompts * cfg.pubswap.responses


def sealing_keys(cfg: RunConfig, run_dir: Path, names: Sequence[str]) -> dict[str, X25519PublicKey]:
    """The parties' public X25519 sealing keys: from the configured roster (a deployment), or,
    in the in-process simulation, from each party's identity (made on first use, as the masked
    backend's set-up does)."""
    roster = cfg.backend_options.get("roster")
    if roster:
        entries = load_roster_entries(Path(roster))
        return {n: entries[n].sealing_key for n in names if n in entries}
    return {n: ensure_party(client_state_dir(run_dir, n), n).entry().sealing_key for n in names}


def swap_party(cfg: RunConfig, run_dir: Path, name: str, peers: dict[str, X25519PublicKey],
               public: PublicSet) -> SwapParty:
    """Party ``name``'s side of the exchange, with its own sealing key from its own folder."""
    own = ensure_party(client_state_dir(run_dir, name), name)
    return SwapParty(cfg, name, own.sealing, peers, public, Path(run_dir) / "clients" / name)


class SwapParty:
    """One institution's side: its sealing key, the roster's public sealing keys, the public set.
    ``root`` is the party's own folder: what it offered (unsealed) is kept there, 0600, so the
    institution can see exactly what it disclosed."""

    def __init__(self, cfg: RunConfig, name: str, key: X25519PrivateKey, peers: dict[str, X25519PublicKey],
                 public: PublicSet, root: Path) -> None:
        self.cfg, self.name, self.key, self.peers, self.public, self.root = cfg, name, key, peers, public, root
        self._pool: dict[int, list[str]] = {}
        self._train: list[int] = []
        self._opened = self._dropped = 0

    def receive(self, round_: int, relay: bytes | None) -> None:
        """Stage 0 of ``round_``: open the blobs relayed to this party (from round_ - 1's
        exchange). A blob that does not open is dropped with one line naming its sender;
        nothing else is lost."""
        self._pool, self._train, self._opened, self._dropped = {}, [], 0, 0
        if relay is None:
            return
        ps, n = self.cfg.pubswap, len(self.public.problems)
        try:
            exchanged, by_sender = unpack_relay(relay, slots(self.cfg), ps.blob_bytes)
        except SealError as err:
            log.warning("client %s: %s; no PubSwap pool this round", self.name, err)
            return
        if exchanged != round_ - 1 or not is_exchange_round(self.cfg, exchanged):
            log.warning("client %s: pubswap relay of round %d in round %d: not the last exchange; dropped",
                        self.name, exchanged, round_)
            return
        for sender, blobs in by_sender.items():
            if sender == self.name or sender not in self.peers:
                log.warning("client %s: pubswap relay names sender %r, not another roster party: dropped",
                            self.name, sender)
                continue
            records = open_records(self.key, self.peers[sender], exchanged, sender, self.name, blobs, ps.blob_bytes)
            bad = 0
            for record in records:
                try:
                    offer = decode_record(record, n) if record is not None else None
                except (ValueError, UnicodeDecodeError):
                    offer, record = None, None
                if record is None:
                    bad += 1
                elif offer is not None:
                    self._pool.setdefault(offer.index, []).append(offer.text)
                    self._opened += 1
            if bad:
                log.warning("client %s: %d pubswap blob(s) from sender %r did not open (tampered, misaddressed "
                            "or replayed): dropped", self.name, bad, sender)
                self._dropped += bad
        self._train = self.public.exchange(self.cfg, exchanged)

    def job(self, round_: int) -> PubSwapJob:
        ps = self.cfg.pubswap
        offer = self.public.exchange(self.cfg, round_) if is_exchange_round(self.cfg, round_) else []
        return PubSwapJob(public=self.public.problems, train=self._train, pool=self._pool, offer=offer,
                          steps=ps.steps, responses=ps.responses, blob_bytes=ps.blob_bytes,
                          opened=self._opened, dropped=self._dropped)

    def seal(self, round_: int, offers: list[Offer], participants: Sequence[str]) -> Message | None:
        """The round's ``sealed-responses`` message (None when round_ is not an exchange round):
        for each other participant, exactly ``slots`` blobs, dummies after the real offers."""
        if not is_exchange_round(self.cfg, round_):
            return None
        ps = self.cfg.pubswap
        records = [encode_record(o, ps.blob_bytes) for o in offers[: slots(self.cfg)]]
        records += [encode_record(None, ps.blob_bytes)] * (slots(self.cfg) - len(records))
        self._keep(round_, offers, records)
        payload = b"".join(seal_records(self.key, self.peers[r], round_, self.name, r, records)
                           for r in others(participants, self.name))
        return Message(round_, SEALED_STAGE, self.name, SERVER, SEALED_KIND, payload)

    def _keep(self, round_: int, offers: list[Offer], records: list[bytes]) -> None:
        folder = self.root / "pubswap"
        doc = [{"index": o.index, "prompt": self.public.problems[o.index].prompt, "response": o.text}
               for o in offers]
        write_private(folder / f"offers-round-{round_}.json", json.dumps(doc, indent=1).encode())
        write_private(folder / f"offers-round-{round_}.bin", b"".join(records))  # exactly what was sealed


class Relay:
    """The server's side: it stores each sender's blobs split by recipient (a public layout) in
    ``folder`` and hands each recipient its share in the next round's stage 0."""

    def __init__(self, cfg: RunConfig, folder: Path) -> None:
        self.cfg, self.folder = cfg, folder

    def collect(self, msg: Message, participants: Sequence[str]) -> None:
        """Keep a ``sealed-responses`` message; a malformed one is dropped naming its sender."""
        try:
            split = split_message(msg.payload, msg.sender, participants, slots(self.cfg), self.cfg.pubswap.blob_bytes)
        except SealError as err:
            log.warning("round %d: %s: dropped", msg.round, err)
            return
        for recipient, blobs in split.items():
            write_private(self.folder / f"round-{msg.round}" / recipient / f"{msg.sender}.bin", blobs)

    def relay(self, round_: int, recipient: str) -> Message | None:
        """Round ``round_``'s ``pubswap-relay`` to ``recipient`` (None: nothing for it)."""
        folder = self.folder / f"round-{round_ - 1}" / recipient
        if not folder.is_dir():
            return None
        by_sender = {p.stem: p.read_bytes() for p in sorted(folder.glob("*.bin"))}
        return Message(round_, RELAY_STAGE, SERVER, recipient, RELAY_KIND, pack_relay(round_ - 1, by_sender))

    def truncate_after(self, last_round: int) -> None:
        """On resume: forget blobs of rounds that never completed."""
        if not self.folder.is_dir():
            return
        for d in self.folder.iterdir():
            if d.name.startswith("round-") and d.name[6:].isdigit() and int(d.name[6:]) > last_round:
                shutil.rmtree(d)
