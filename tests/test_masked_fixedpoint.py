"""Fixed point: sums decode within the documented bound, never wrap, refuse unsafe settings."""

from __future__ import annotations

import os

import numpy as np
import pytest

from secure_fgrpo.secure_sum.base import SumSpec
from secure_fgrpo.secure_sum.masked import quantisation_bound
from secure_fgrpo.secure_sum.masked.fixedpoint import FixedPoint, max_quantum
from secure_fgrpo.secure_sum.masked.prg import KeystreamPRG


def _dither(dim: int) -> np.ndarray:
    return KeystreamPRG("aes-ctr", dim).expand(os.urandom(32))


def _encode_sum(fp: FixedPoint, xs: list[np.ndarray]) -> np.ndarray:
    total = np.zeros(xs[0].shape[0], dtype=fp.word)
    for x in xs:
        np.add(total, fp.encode(x, _dither(x.shape[0])), out=total)
    return fp.decode(total)


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("n", [2, 7, 50])
def test_sum_within_bound(bits: int, n: int) -> None:
    rng = np.random.default_rng(n)
    B, W, dim = 3.0, 20.0, 400
    fp = FixedPoint.derive(n, B, W, bits)
    xs = []
    for _ in range(n):
        v = rng.standard_normal(dim)
        v[:-1] *= B / np.linalg.norm(v[:-1])
        v[-1] = rng.uniform(0, W)
        xs.append(v)
    err = np.abs(_encode_sum(fp, xs) - np.sum(xs, axis=0))
    assert err[:-1].max() <= fp.data_error_bound(n)
    assert err[-1] <= fp.weight_error_bound(n)
    assert fp.error_bound(n) == max(fp.data_error_bound(n), fp.weight_error_bound(n))


@pytest.mark.parametrize("sign", [+1.0, -1.0])
def test_extreme_inputs_do_not_wrap(sign: float) -> None:
    """Every client puts its whole norm on one coordinate and the maximal weight."""
    n, B, W, dim = 9, 2.5, 7.0, 16
    fp = FixedPoint.derive(n, B, W, 32)
    x = np.zeros(dim)
    x[3] = sign * B * (1 + 1e-9)  # check_input tolerates 1e-9 relative excess
    x[-1] = W * (1 + 1e-9)
    got = _encode_sum(fp, [x] * n)
    assert np.abs(got - n * x).max() <= fp.error_bound(n)
    assert np.sign(got[3]) == sign


def test_stochastic_rounding_is_unbiased() -> None:
    fp = FixedPoint.derive(2, 1.0, 1.0, 32)
    q = 1.0 / fp.data_scale
    x = np.full(200_001, 0.3 * q)  # 0.3 of a quantum: rounds to 0 or 1 quantum
    words = fp.encode(x, _dither(x.shape[0])).view(np.int32)[:-1]
    assert set(np.unique(words)) <= {0, 1}
    assert abs(words.mean() - 0.3) < 0.005


def test_scales_follow_n_and_bounds() -> None:
    a = FixedPoint.derive(10, 1.0, 1.0)
    b = FixedPoint.derive(20, 1.0, 1.0)
    c = FixedPoint.derive(10, 2.0, 4.0)
    assert a.data_scale == pytest.approx(2 * b.data_scale, rel=1e-6)
    assert c.data_scale == pytest.approx(a.data_scale / 2) and c.weight_scale == pytest.approx(a.weight_scale / 4)
    assert max_quantum(10, 32) * 10 <= 2 ** 31 - 1


def test_explicit_scale_that_could_wrap_is_refused() -> None:
    with pytest.raises(ValueError, match="could wrap"):
        FixedPoint.derive(10, 1.0, 1.0, 32, scale=2.0 ** 28)
    ok = FixedPoint.derive(10, 1.0, 1.0, 32, scale=2.0 ** 20)
    assert ok.data_scale == ok.weight_scale == 2.0 ** 20
    with pytest.raises(ValueError, match="scale"):
        FixedPoint.derive(10, 1.0, 1.0, 32, scale=-1.0)


def test_unreachable_precision_and_bad_words_are_refused() -> None:
    with pytest.raises(ValueError, match="modulus_bits=64"):
        FixedPoint.derive(100, 10.0, 1000.0, 32, max_error=1e-9)
    assert FixedPoint.derive(100, 10.0, 1000.0, 64, max_error=1e-6).error_bound(100) <= 1e-6
    with pytest.raises(ValueError, match="modulus_bits"):
        FixedPoint.derive(3, 1.0, 1.0, 16)
    with pytest.raises(ValueError, match="without wrapping"):
        FixedPoint.derive(2 ** 32, 1.0, 1.0, 32)


def test_quantisation_bound_of_a_spec() -> None:
    spec = SumSpec(round=1, dim=10, data_bound=1.0, weight_bound=5.0,
                   participants=tuple("abcde"), threshold=3)
    full = quantisation_bound(spec)
    assert quantisation_bound(spec, 3) == pytest.approx(full * 3 / 5)
    assert 0 < full < 1e-7
    assert quantisation_bound(spec, modulus_bits=64) < full / 1000
