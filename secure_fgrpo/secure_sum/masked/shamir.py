"""Shamir secret sharing over the prime field GF(2^521 - 1).

Secrets here are 32-byte values (a self-mask seed, an X25519 private key), so one field
element per secret is enough and no secret is ever split into chunks. The Mersenne prime
2^521 - 1 is large enough for any 32-byte value and well known to be prime.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass

PRIME = (1 << 521) - 1
SHARE_BYTES = 66  # ceil(521 / 8): a share's y value, big-endian
SECRET_BYTES = 32


class ShamirError(ValueError):
    """Shares that cannot yield a secret (too few, duplicated, out of range, inconsistent)."""


@dataclass(frozen=True)
class Share:
    """Point ``(x, y)`` on the sharing polynomial; ``x`` is the holder's public index (>= 1)."""

    x: int
    y: int

    def to_bytes(self) -> bytes:
        return self.y.to_bytes(SHARE_BYTES, "big")

    @classmethod
    def from_bytes(cls, x: int, data: bytes) -> Share:
        if len(data) != SHARE_BYTES:
            raise ShamirError(f"share has {len(data)} bytes, expected {SHARE_BYTES}")
        y = int.from_bytes(data, "big")
        if y >= PRIME:
            raise ShamirError("share value is outside the field")
        _check_x(x)
        return cls(x, y)


def _check_x(x: int) -> None:
    if not 1 <= x < PRIME:
        raise ShamirError(f"share index {x} is outside [1, p)")


def split(secret: bytes, xs: list[int], threshold: int) -> list[Share]:
    """Share ``secret`` so that any ``threshold`` of the holders at ``xs`` recover it.

    Coefficients come from :mod:`secrets`: anything fewer than ``threshold`` shares is
    independent of the secret.
    """
    if len(secret) != SECRET_BYTES:
        raise ShamirError(f"secret must have {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise ShamirError(f"threshold {threshold} must be in [1, {len(xs)}] (number of holders)")
    if len(set(xs)) != len(xs):
        raise ShamirError("holder indices are not distinct")
    for x in xs:
        _check_x(x)
    coeffs = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    return [Share(x, _evaluate(coeffs, x)) for x in xs]


def _evaluate(coeffs: list[int], x: int) -> int:
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % PRIME
    return acc


def _weights(xs: list[int]) -> list[int]:
    """Barycentric weights 1 / Π_{j≠i} (x_i − x_j) mod PRIME: the part of every Lagrange basis
    that does not depend on the evaluation point. Holder indices are small integers, so each
    denominator is built in plain integers; all are inverted together (Montgomery's trick: one
    modular inverse, not one per share)."""
    dens = []
    for i, xi in enumerate(xs):
        den = 1
        for j, xj in enumerate(xs):
            if i != j:
                den *= xi - xj
        dens.append(den % PRIME)
    prefix = [1]
    for d in dens:
        prefix.append(prefix[-1] * d % PRIME)
    if prefix[-1] == 0:  # two equal x (x < PRIME, so only then)
        raise ShamirError("duplicate share indices")
    inv = pow(prefix[-1], -1, PRIME)
    out = [0] * len(xs)
    for i in range(len(xs) - 1, -1, -1):
        out[i] = inv * prefix[i] % PRIME
        inv = inv * dens[i] % PRIME
    return out


def _lagrange_at(shares: list[Share], at: int, weights: list[int] | None = None) -> int:
    """Value at ``at`` of the unique polynomial of degree < len(shares) through ``shares``;
    ``weights`` (from :func:`_weights` of the same x) makes it O(len(shares)): the server
    recovers n secrets a round and checks every extra share against each."""
    w = weights if weights is not None else _weights([s.x for s in shares])
    diffs = [(at - s.x) % PRIME for s in shares]
    prefix = [1]
    for d in diffs:
        prefix.append(prefix[-1] * d % PRIME)
    total, suffix = 0, 1
    for i in range(len(shares) - 1, -1, -1):  # Π_{j≠i} (at − x_j) = prefix[i] · suffix
        total += shares[i].y * w[i] % PRIME * prefix[i] % PRIME * suffix
        suffix = suffix * diffs[i] % PRIME
    return total % PRIME


def combine(shares: list[Share], threshold: int, weights: list[int] | None = None) -> bytes:
    """Recover the secret from at least ``threshold`` shares (the first ``threshold`` are used).

    A wrong share yields a wrong secret, not an error: callers check the result against a
    public commitment (the hash of a seed, the advertised public key of a private key).
    """
    if len(shares) < threshold:
        raise ShamirError(f"{len(shares)} share(s), need {threshold}")
    xs = [s.x for s in shares]
    if len(set(xs)) != len(xs):
        raise ShamirError("duplicate share indices")
    for x in xs:
        _check_x(x)
    value = _lagrange_at(list(shares[:threshold]), 0, weights)  # weights: of those first x
    if value >= 1 << (8 * SECRET_BYTES):
        raise ShamirError("recovered value is not a 32-byte secret (wrong shares)")
    return value.to_bytes(SECRET_BYTES, "big")


MAX_SUBSETS = 4096  # bound on the search for a consistent subset (wrong shares are rare)


def recover_checked(
    shares: list[Share], threshold: int, valid: Callable[[bytes], bool]
) -> tuple[bytes | None, list[int]]:
    """The secret that ``valid`` accepts (a public commitment / public key check) and the x of
    every share inconsistent with it; ``(None, [])`` when no subset of ``threshold`` shares
    within :data:`MAX_SUBSETS` tries gives one. A wrong share thus names its holder."""
    ordered = sorted(shares, key=lambda s: s.x)
    for i, subset in enumerate(itertools.combinations(ordered, threshold)):
        if i >= MAX_SUBSETS:
            break
        try:
            w = _weights([s.x for s in subset])  # once per subset: the secret and every check use it
            secret = combine(list(subset), threshold, w)
        except ShamirError:
            continue
        if not valid(secret):
            continue
        others = [s for s in ordered if s not in subset]
        bad = [s.x for s in others if _lagrange_at(list(subset), s.x, w) != s.y]
        return secret, bad
    return None, []
