"""Shamir sharing over GF(2^521 - 1): any t shares recover, fewer do not, bad shares refused."""

from __future__ import annotations

import contextlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_fgrpo.secure_sum.masked import shamir


@st.composite
def sharing(draw: st.DrawFn) -> tuple[bytes, list[int], int, list[int]]:
    secret = draw(st.binary(min_size=32, max_size=32))
    n = draw(st.integers(1, 20))
    xs = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    t = draw(st.integers(1, n))
    subset = draw(st.permutations(range(n)))
    return secret, xs, t, list(subset)


@settings(max_examples=200, deadline=None)
@given(sharing(), st.data())
def test_any_threshold_subset_recovers(case: tuple[bytes, list[int], int, list[int]], data: st.DataObject) -> None:
    secret, xs, t, order = case
    shares = shamir.split(secret, xs, t)
    k = data.draw(st.integers(t, len(xs)))
    chosen = [shares[i] for i in order[:k]]
    assert shamir.combine(chosen, t) == secret


@settings(max_examples=200, deadline=None)
@given(sharing())
def test_fewer_than_threshold_do_not_recover(case: tuple[bytes, list[int], int, list[int]]) -> None:
    secret, xs, t, order = case
    if t < 2:
        return
    shares = shamir.split(secret, xs, t)
    chosen = [shares[i] for i in order[: t - 1]]
    with contextlib.suppress(shamir.ShamirError):  # the interpolated value may not even fit in 32 bytes
        assert shamir.combine(chosen, t - 1) != secret


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_share_bytes_round_trip(secret: bytes) -> None:
    for s in shamir.split(secret, [1, 2, 3], 2):
        raw = s.to_bytes()
        assert len(raw) == shamir.SHARE_BYTES
        assert shamir.Share.from_bytes(s.x, raw) == s


def test_shares_are_randomised() -> None:
    secret = os.urandom(32)
    a = shamir.split(secret, [1, 2, 3], 2)
    b = shamir.split(secret, [1, 2, 3], 2)
    assert [s.y for s in a] != [s.y for s in b]
    # With threshold 1 the polynomial is constant: every share is the secret (sanity of the field maths).
    assert {s.y for s in shamir.split(secret, [1, 2], 1)} == {int.from_bytes(secret, "big")}


def test_a_wrong_share_changes_the_secret() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, [1, 2, 3, 4], 3)
    bad = shamir.Share(shares[0].x, (shares[0].y + 1) % shamir.PRIME)
    with contextlib.suppress(shamir.ShamirError):
        assert shamir.combine([bad, shares[1], shares[2]], 3) != secret


@pytest.mark.parametrize("call, match", [
    (lambda: shamir.split(b"short", [1, 2], 2), "32 bytes"),
    (lambda: shamir.split(bytes(32), [1, 2], 3), "threshold"),
    (lambda: shamir.split(bytes(32), [1, 1], 2), "distinct"),
    (lambda: shamir.split(bytes(32), [0, 1], 2), "outside"),
    (lambda: shamir.combine([shamir.Share(1, 5)], 2), "need 2"),
    (lambda: shamir.combine([shamir.Share(1, 5), shamir.Share(1, 6)], 2), "duplicate"),
    (lambda: shamir.Share.from_bytes(1, b"\x00" * 65), "66"),
    (lambda: shamir.Share.from_bytes(1, b"\xff" * 66), "outside the field"),
    (lambda: shamir.Share.from_bytes(0, b"\x00" * 66), "outside"),
])
def test_bad_input_is_refused(call, match: str) -> None:
    with pytest.raises(shamir.ShamirError, match=match):
        call()


def test_lagrange_with_shared_weights_matches_the_textbook_formula() -> None:
    """The server's fast path (barycentric weights computed once, one inverse for all) gives the
    same value as the textbook Lagrange sum with one modular inverse per share, at 0, at a
    holder's own x and elsewhere; equal x are refused by name."""
    from secure_fgrpo.secure_sum.masked.shamir import PRIME, ShamirError, Share, _lagrange_at, _weights

    rng = random.Random(7)
    xs = rng.sample(range(1, 200), 23)
    shares = [Share(x, rng.randrange(PRIME)) for x in xs]

    def textbook(at: int) -> int:
        total = 0
        for i, si in enumerate(shares):
            num = den = 1
            for j, sj in enumerate(shares):
                if i != j:
                    num, den = num * (at - sj.x) % PRIME, den * (si.x - sj.x) % PRIME
            total += si.y * num * pow(den, -1, PRIME)
        return total % PRIME

    w = _weights(xs)
    for at in (0, xs[0], xs[-1], 500, 123_456):
        assert _lagrange_at(shares, at, w) == _lagrange_at(shares, at) == textbook(at)
    with pytest.raises(ShamirError, match="duplicate share indices"):
        _weights([3, 5, 3])
