"""Verifiable blame for sealed shares: one malicious client costs at most one round.

A share owner seals each holder's Shamir shares under the pair key k = HKDF(X25519(c_o, C_h),
(round, parameters, owner, holder)) and signs ``(owner, holder, ciphertext, confirm)`` where
``confirm = HKDF(k, "confirm")`` (crypto.confirm_tag). A holder whose share does not open does
not withdraw: it leaves the owner out (no mask with it, no share of it revealed) and files a
complaint carrying k. The pair key protects that one ciphertext only, so revealing it costs the
holder nothing the owner had not already spoiled. The server (or anyone with the transcript)
then decides:

* the owner's signature holds, ``confirm_tag(k) == confirm`` and the ciphertext does not open to
  a well-formed share for this pair: the owner sealed garbage -> **owner blamed** (excluded from
  the sum now and, by the federation, from later rounds);
* same, but the ciphertext opens fine: a false complaint -> ProtocolError against the **holder**;
* the tag does not match k (the owner used another key, or the holder reveals a wrong one), or
  the round is unsigned: not provable -> **dispute**: both leave this round's sum, nobody blamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base import ProtocolError
from . import crypto, shamir
from .context import RoundContext
from .keys import verify
from .messages import DecodeError, SharePlain, ShareUpload, decode


class ShareInvalid(ValueError):
    """A sealed share that fails authentication, decoding or addressing (no secrets inside)."""


def share_aad(ctx: RoundContext, owner: str, holder: str) -> bytes:
    return crypto.context("share", ctx.spec.round, ctx.digest, owner, holder)


def sealed_sign_parts(owner: str, holder: str, blob: bytes, confirm: bytes) -> tuple[bytes, ...]:
    return owner.encode(), holder.encode(), blob, confirm


def open_share(ctx: RoundContext, key: bytes, blob: bytes, owner: str, holder: str) -> SharePlain:
    """The one rule for what a well-formed sealed share is (client and server alike)."""
    try:
        plain = decode(SharePlain.KIND, crypto.open_sealed(key, blob, share_aad(ctx, owner, holder)))
        shamir.Share.from_bytes(ctx.index(holder), plain.self_share)
        shamir.Share.from_bytes(ctx.index(holder), plain.key_share)
    except (crypto.CryptoError, DecodeError, shamir.ShamirError):
        raise ShareInvalid(f"sealed share from {owner!r} fails authentication or decoding") from None
    if (plain.owner, plain.holder) != (owner, holder):
        raise ShareInvalid(f"sealed share from {owner!r} was addressed to another pair")
    return plain


@dataclass
class Verdicts:
    blamed: dict[str, str] = field(default_factory=dict)  # owner -> evidence
    disputes: set[tuple[str, str]] = field(default_factory=set)  # (owner, holder)
    unpaired: set[tuple[str, str]] = field(default_factory=set)  # holder did not mask with owner

    def excluded(self) -> set[str]:
        return set(self.blamed) | {p for pair in self.disputes for p in pair}


def judge(ctx: RoundContext, stage: str, holder: str, complaints: tuple[tuple[str, bytes], ...],
          uploads: dict[str, ShareUpload], neighbours: frozenset[str], out: Verdicts) -> None:
    """Add the holder's complaints to ``out``; ProtocolError (against the holder) for a malformed
    or false one. Call for every holder before changing any state."""
    seen: set[str] = set()
    for owner, key in complaints:
        if owner in seen or owner not in neighbours or owner not in uploads:
            raise ProtocolError(holder, stage, f"complaint against {owner!r}: duplicated, or not a "
                                               f"neighbour that shared with {holder!r}")
        seen.add(owner)
        entry = next(e for e in uploads[owner].entries if e[0] == holder)
        _, blob, confirm, sig = entry
        signed = ctx.roster is not None and verify(ctx.roster[owner], sig, ctx.sign_bytes(
            "sealed", *sealed_sign_parts(owner, holder, blob, confirm)))
        out.unpaired.add((owner, holder))
        if not signed or crypto.confirm_tag(key, share_aad(ctx, owner, holder)) != confirm:
            out.disputes.add((owner, holder))
            continue
        try:
            open_share(ctx, key, blob, owner, holder)
        except ShareInvalid as err:
            out.blamed.setdefault(owner, f"round {ctx.spec.round}: signed a sealed share for {holder!r} "
                                         f"that does not open under the key it confirmed ({err})")
            continue
        raise ProtocolError(holder, stage, f"false complaint: the share {owner!r} sealed for it opens")
