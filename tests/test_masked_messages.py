"""The message codec: every type round-trips; the decoder survives 10,000 fuzzed inputs with
nothing but a DecodeError, and accepts only canonical encodings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secure_fgrpo.secure_sum.masked import messages as m

names = st.text(min_size=1, max_size=12).filter(lambda s: len(s.encode()) <= 255)
key = st.binary(min_size=32, max_size=32)
share = st.binary(min_size=66, max_size=66)
sig = st.one_of(st.just(b""), st.binary(min_size=64, max_size=64))
blob = st.binary(max_size=80)
small = {"max_size": 4}

MESSAGES = st.one_of(
    st.builds(m.Advertise, key, key, sig),
    st.builds(m.KeyBook, st.lists(st.tuples(names, key, key, sig), **small).map(tuple)),
    st.builds(m.ShareUpload, key, st.lists(st.tuples(names, blob, key, sig), **small).map(tuple)),
    st.builds(m.SharePlain, names, names, share, share),
    st.builds(m.Forwarded, st.lists(st.tuples(names, blob, key, sig), **small).map(tuple)),
    st.builds(m.MaskedInput, st.binary(max_size=64), st.lists(st.tuples(names, key), **small).map(tuple), sig),
    st.builds(m.SurvivorList, st.lists(names, **small).map(tuple)),
    st.builds(m.ConsistencyAck, key, sig),
    st.builds(m.UnmaskRequest, st.lists(names, **small).map(tuple),
              st.lists(st.tuples(names, key, sig), **small).map(tuple),
              st.lists(names, **small).map(tuple), st.lists(names, **small).map(tuple)),
    st.builds(m.UnmaskShares, st.lists(st.tuples(names, share), **small).map(tuple),
              st.lists(st.tuples(names, share), **small).map(tuple)),
)


def _normal(msg: object) -> object:
    if isinstance(msg, m.MaskedInput):
        return m.MaskedInput(bytes(msg.words), msg.complaints, msg.signature)
    return msg


@settings(max_examples=500, deadline=None)
@given(MESSAGES)
def test_round_trip(msg: m.Wire) -> None:
    raw = msg.to_bytes()
    assert _normal(m.decode(msg.KIND, raw)) == _normal(msg)


K, S, G = b"k" * 32, b"s" * 66, b"g" * 64
VALID = [msg.to_bytes() for msg in (
    m.Advertise(K, K, G), m.Advertise(K, K, b""),
    m.KeyBook((("a", K, K, G), ("bé", K, K, b""))), m.KeyBook(()),
    m.ShareUpload(K, (("a", b"x" * 40, K, G), ("b", b"", K, b""))), m.SharePlain("a", "b", S, S),
    m.Forwarded((("a", b"y" * 9, K, G),)), m.MaskedInput(b"\x01" * 40), m.MaskedInput(b"", (("a", K),)),
    m.SurvivorList(("a", "b", "c")), m.ConsistencyAck(K, G), m.ConsistencyAck(K, b""),
    m.UnmaskRequest(("a", "b"), (("a", K, G), ("b", K, b"")), ("a",), ("c",)),
    m.UnmaskShares((("a", S),), (("b", S), ("c", S))),
)]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """Random bytes, or a valid encoding (of any kind) truncated, extended, or with bytes changed."""
    kind = draw(st.sampled_from(sorted(m.TYPES)))
    how = draw(st.sampled_from(["random", "truncate", "extend", "flip", "header"]))
    if how == "random":
        return kind, draw(st.binary(max_size=200))
    raw = bytearray(draw(st.sampled_from(VALID)))
    if how == "truncate":
        return kind, bytes(raw[: draw(st.integers(0, max(len(raw) - 1, 0)))])
    if how == "extend":
        return kind, bytes(raw) + draw(st.binary(min_size=1, max_size=8))
    if how == "header":
        return kind, m.MAGIC + bytes([m.VERSION, m.TYPES[kind].TAG]) + draw(st.binary(max_size=120))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] = draw(st.integers(0, 255))
    return kind, bytes(raw)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_decoder_fuzz(case: tuple[str, bytes]) -> None:
    kind, raw = case
    try:
        msg = m.decode(kind, raw)
    except m.DecodeError as err:
        assert err.kind == kind and str(err).startswith(kind)
        return
    assert msg.to_bytes() == raw  # whatever is accepted is the one canonical encoding


@pytest.mark.parametrize("raw, field", [
    (b"XXX\x01\x01", "magic"),
    (m.MAGIC + b"\x02\x01", "version"),
    (m.MAGIC + b"\x01\x02", "tag"),
    (m.Advertise(b"a" * 32, b"b" * 32, b"").to_bytes() + b"\x00", "end"),
    (m.MAGIC + b"\x01\x01" + b"a" * 64 + b"\x05" + b"s" * 5, "signature"),
])
def test_specific_rejections_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(m.DecodeError) as info:
        m.decode("advertise", raw)
    assert info.value.field == field


def test_names_must_be_non_empty_utf8_and_counts_bounded() -> None:
    good = m.SurvivorList(("a",)).to_bytes()
    with pytest.raises(m.DecodeError, match="empty name"):
        m.decode("survivors", good[:-2] + b"\x00")
    with pytest.raises(m.DecodeError, match="UTF-8"):
        m.decode("survivors", good[:-1] + b"\xff")
    with pytest.raises(m.DecodeError, match="exceeds"):
        m.decode("survivors", m.MAGIC + b"\x01\x07" + (2 ** 31).to_bytes(4, "little"))
    with pytest.raises(m.DecodeError, match="unknown message kind"):
        m.decode("nope", good)


def test_encoder_refuses_wrong_sizes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        m.Advertise(b"a", b"b" * 32, b"").to_bytes()
    with pytest.raises(ValueError, match="signature"):
        m.Advertise(b"a" * 32, b"b" * 32, b"x").to_bytes()
    with pytest.raises(ValueError, match="name"):
        m.SurvivorList(("",)).to_bytes()


def test_secret_shares_stay_out_of_repr() -> None:
    plain = m.SharePlain("a", "b", b"\x07" * 66, b"\x09" * 66)
    assert "0707" not in repr(plain) and "\\x07" not in repr(plain)
