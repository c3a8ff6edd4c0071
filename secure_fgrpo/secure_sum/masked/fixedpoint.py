"""Fixed-point encoding of ``[e·Δ, e]`` into machine words that sum without wrapping.

Every client input is first checked against the public bounds (``SumSpec.check_input``), so
``|x_j| <= data_bound`` for a data coordinate and ``0 <= e <= weight_bound``. With ``n`` the
number of participants and words of ``bits`` bits, each encoded coordinate is kept within
``±cap`` where ``n·cap <= 2^(bits-1) - 1``: the sum of any subset of clients then fits the
signed range of a word, so decoding the modular sum is exact. A parameter set that breaks
this is refused (never clipped, never warned about).

Rounding is stochastic (``floor(x·s + u)``, u uniform in [0, 1) from a keystream), hence
unbiased; each client's per-coordinate error is below one quantum ``1/s`` (plus float64
round-off, budgeted as a factor ``1 + 2^-10``), so the decoded sum over ``m`` contributors is
within ``m·(1 + 2^-10)/s`` of the exact float sum, coordinate by coordinate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..base import SumSpec

BITS = (32, 64)
_HEADROOM = 1e-6  # inputs may exceed the bound by 1e-9 relative (SumSpec.check_input)
_FLOAT_SLACK = 1.0 + 2.0 ** -10
_PRECISION_CAP_64 = 2 ** 40  # keeps float64 dithering exact enough for 64-bit words


def _word_dtypes(bits: int) -> tuple[np.dtype, np.dtype]:
    if bits == 32:
        return np.dtype("<u4"), np.dtype("<i4")
    if bits == 64:
        return np.dtype("<u8"), np.dtype("<i8")
    raise ValueError(f"secure_sum.options.modulus_bits must be one of {BITS}, got {bits!r}")


def max_quantum(n: int, bits: int) -> int:
    """Largest |encoded coordinate| per client such that n of them cannot wrap."""
    half = 2 ** (bits - 1)
    cap = (half - 1) // n
    if bits == 64:
        cap = min(cap, _PRECISION_CAP_64, 2 ** 53 // n)
    return cap


@dataclass(frozen=True)
class FixedPoint:
    """Scales for the data part and for the weight; the modulus is ``2^bits``."""

    n: int
    bits: int
    data_scale: float
    weight_scale: float

    @classmethod
    def derive(cls, n: int, data_bound: float, weight_bound: float, bits: int = 32,
               scale: float | None = None, max_error: float | None = None) -> FixedPoint:
        """Pick the finest scales that cannot wrap, or check an explicit ``scale``."""
        _word_dtypes(bits)
        if n < 1:
            raise ValueError(f"fixed point needs at least one participant, got n={n}")
        cap = max_quantum(n, bits)
        if cap < 1:
            raise ValueError(f"{n} participants cannot be summed in {bits}-bit words without wrapping")
        if scale is None:
            ds = cap / (data_bound * (1 + _HEADROOM))
            ws = cap / (weight_bound * (1 + _HEADROOM))
        else:
            if not (isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0
                    and math.isfinite(scale)):
                raise ValueError(f"secure_sum.options.scale must be a finite number > 0, got {scale!r}")
            ds = ws = float(scale)
            for what, bound in (("data_bound", data_bound), ("weight_bound", weight_bound)):
                worst = math.ceil(bound * (1 + 1e-9) * ds)
                if worst > cap:
                    raise ValueError(
                        f"secure_sum.options.scale={scale:g}: a client can encode {what}={bound:g} as {worst} "
                        f"quanta, and {n} such clients sum past the signed range of a {bits}-bit word "
                        f"(at most {cap} quanta each); the sum could wrap. Lower the scale, lower the "
                        f"bound, or use modulus_bits=64")
        fp = cls(n=n, bits=bits, data_scale=float(ds), weight_scale=float(ws))
        if max_error is not None and fp.error_bound(n) > max_error:
            raise ValueError(
                f"secure_sum.options.max_error={max_error:g}: with {n} participants, data_bound="
                f"{data_bound:g}, weight_bound={weight_bound:g} and {bits}-bit words the quantisation "
                f"error of the sum can reach {fp.error_bound(n):.3g}; use modulus_bits=64 or looser bounds")
        return fp

    @property
    def word(self) -> np.dtype:
        return _word_dtypes(self.bits)[0]

    def data_error_bound(self, m: int) -> float:
        return m * _FLOAT_SLACK / self.data_scale

    def weight_error_bound(self, m: int) -> float:
        return m * _FLOAT_SLACK / self.weight_scale

    def error_bound(self, m: int) -> float:
        """Max |decoded - exact| over every coordinate of a sum of ``m`` inputs."""
        return max(self.data_error_bound(m), self.weight_error_bound(m))

    def encode(self, x: np.ndarray, dither: np.ndarray) -> np.ndarray:
        """Words ``floor(x·s + u)`` mod 2^bits; ``dither`` is uniform uint32 (u = dither/2^32)."""
        if x.ndim != 1 or dither.shape != x.shape:
            raise ValueError("encode: x and dither must be 1-D arrays of the same length")
        # y = x·s·2^32 + dither, then ·2^-32: exact power-of-two scaling, no second temporary.
        y = np.multiply(x, self.data_scale * 2.0 ** 32)
        y[-1] = float(x[-1]) * self.weight_scale * 2.0 ** 32
        np.add(y, dither, out=y)
        np.multiply(y, 2.0 ** -32, out=y)
        if self.bits == 32:
            # Offset by 2^31 so the float -> uint32 cast truncates a positive number (= floor),
            # then remove the offset in modular arithmetic.
            np.add(y, 2.0 ** 31, out=y)
            words = y.astype(np.uint32)
            np.subtract(words, np.uint32(2 ** 31), out=words)
            return words
        np.floor(y, out=y)
        return y.astype(np.int64).view(np.uint64)

    def decode(self, total: np.ndarray) -> np.ndarray:
        """Modular word sum -> float sum (exact up to the quantisation of each input)."""
        signed = total.view(_word_dtypes(self.bits)[1])
        out = signed.astype(np.float64)
        out[:-1] *= 1.0 / self.data_scale
        out[-1] = float(signed[-1]) / self.weight_scale
        return out


def quantisation_bound(spec: SumSpec, n: int | None = None, modulus_bits: int = 32,
                       scale: float | None = None) -> float:
    """Guaranteed L∞ distance between the masked backend's decoded sum and the exact sum of
    the float inputs, when ``n`` clients (default: all participants) contribute."""
    fp = FixedPoint.derive(len(spec.participants), spec.data_bound, spec.weight_bound,
                           modulus_bits, scale)
    return fp.error_bound(len(spec.participants) if n is None else n)
