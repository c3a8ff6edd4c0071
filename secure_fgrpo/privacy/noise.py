"""Secret randomness for DP: Gaussian, Bernoulli, Poisson and Skellam draws from a ChaCha20
keystream keyed by ``os.urandom``.

DP noise must be unpredictable to whoever sees the released value — a seeded simulation RNG
would let anyone who knows the seed subtract it — so it never comes from numpy's or torch's
generators. Each Gaussian is the sum of four Box–Muller normals divided by two, the remedy
Opacus' ``secure_mode`` applies against attacks on the floating-point representation of a
single textbook Gaussian sample (Mironov 2012; Holohan & Braghin 2021).

Poisson draws (for the integer Skellam noise, privacy/skellam.py) use only this stream's
uniforms: below a mean of 10, the count of unit-rate exponential gaps that fit in [0, λ]; from
10 up, Hörmann's transformed rejection with squeeze (PTRS, 1993), vectorised over the entries
still rejected. The proposal is centred on floor(λ) and the acceptance test uses a Stirling form
of the log-pmf that does not cancel, so means up to 2^50 stay exact to float rounding.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

_KEY_BYTES = 32
_NONCE = bytes(16)  # each generator has a fresh random key, so one nonce per key is enough
POISSON_MAX = 2.0 ** 50  # larger means lose integer precision in float64
_PTRS_MIN = 10.0


class SecureRandom:
    """A cryptographic stream of uniforms, normals and coin flips. ``key`` is for tests only."""

    def __init__(self, key: bytes | None = None) -> None:
        key = os.urandom(_KEY_BYTES) if key is None else key
        if len(key) != _KEY_BYTES:
            raise ValueError(f"SecureRandom key must be {_KEY_BYTES} bytes")
        self._stream = Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()

    def _words(self, n: int) -> np.ndarray:
        return np.frombuffer(self._stream.update(bytes(8 * n)), dtype="<u8")

    def uniform(self, n: int) -> np.ndarray:
        """n floats uniform on the open interval (0, 1), 53 random bits each."""
        return ((self._words(n) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53

    def _box_muller(self, n: int) -> np.ndarray:
        half = (n + 1) // 2
        u1, u2 = self.uniform(half), self.uniform(half)
        r = np.sqrt(-2.0 * np.log(u1))
        return np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]

    def normal(self, n: int, std: float) -> np.ndarray:
        """n independent N(0, std²) samples (float64)."""
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        if n == 0 or std == 0:
            return np.zeros(n)
        z = self._box_muller(4 * n).reshape(4, n).sum(axis=0) / 2.0
        return z * std

    def normal_like(self, ref: torch.Tensor, std: float) -> torch.Tensor:
        """Drawn on the CPU from the stream, then copied to ``ref``'s device."""
        return torch.from_numpy(self.normal(ref.numel(), std)).to(device=ref.device, dtype=ref.dtype).view_as(ref)

    def bernoulli(self, n: int, p: float) -> np.ndarray:
        """n independent coin flips with P(True) = p."""
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        return self.uniform(n) < p

    def poisson(self, lam: float, n: int) -> np.ndarray:
        """n independent Poisson(lam) counts (int64)."""
        lam = float(lam)
        if not (math.isfinite(lam) and 0 <= lam <= POISSON_MAX):
            raise ValueError(f"Poisson mean must be in [0, 2^50], got {lam!r}")
        if n == 0 or lam == 0:
            return np.zeros(n, dtype=np.int64)
        return self._poisson_small(lam, n) if lam < _PTRS_MIN else self._poisson_ptrs(lam, n)

    def skellam(self, mu: float, n: int) -> np.ndarray:
        """n independent Sk(mu) = Poisson(mu) - Poisson(mu) draws (int64; variance 2·mu)."""
        return self.poisson(mu, n) - self.poisson(mu, n)

    def _poisson_small(self, lam: float, n: int) -> np.ndarray:
        """Arrivals of a unit-rate Poisson process in [0, lam]: add Exp(1) gaps until past lam."""
        out = np.zeros(n, dtype=np.int64)
        clock = np.zeros(n)
        live = np.arange(n)
        while live.size:
            clock[live] -= np.log(self.uniform(live.size))
            inside = clock[live] <= lam
            live = live[inside]
            out[live] += 1
        return out

    def _poisson_ptrs(self, lam: float, n: int) -> np.ndarray:
        """Hörmann (1993), PTRS: a transformed-uniform proposal, a cheap squeeze, then the exact
        log-pmf test; only the rejected entries draw again."""
        b = 0.931 + 2.53 * math.sqrt(lam)
        a = -0.059 + 0.02483 * b
        log_inv_alpha = math.log(1.1239 + 1.1328 / (b - 3.4))
        v_r = 0.9277 - 3.6224 / (b - 2.0)
        base = math.floor(lam)
        out = np.empty(n, dtype=np.int64)
        live = np.arange(n)
        while live.size:
            u = self.uniform(live.size) - 0.5
            v = self.uniform(live.size)
            us = 0.5 - np.abs(u)
            with np.errstate(over="ignore", invalid="ignore"):
                k = base + np.floor((2.0 * a / us + b) * u + (lam - base) + 0.43)
            ok = (us >= 0.07) & (v <= v_r)
            test = ~ok & (k >= 0) & ~((us < 0.013) & (v > us)) & np.isfinite(k)
            if test.any():
                lhs = np.log(v[test]) + log_inv_alpha - np.log(a / (us[test] * us[test]) + b)
                ok[test] = lhs <= poisson_log_pmf(k[test], lam)
            out[live[ok]] = k[ok].astype(np.int64)
            live = live[~ok]
        return out


def poisson_log_pmf(k: np.ndarray, lam: float) -> np.ndarray:
    """log P(Poisson(lam) = k) for integer-valued floats k >= 0, without the cancellation of
    ``-lam + k·log(lam) - lgamma(k + 1)`` at large lam: with x = (k - lam)/lam,
    ``-lam·((1 + x)·log1p(x) - x) - log(2πk)/2 - stirlerr(k)``."""
    k = np.asarray(k, dtype=np.float64)
    out = np.full(k.shape, -float(lam))
    pos = k >= 1
    kp = k[pos]
    x = (kp - lam) / lam
    out[pos] = -lam * ((1.0 + x) * np.log1p(x) - x) - 0.5 * np.log(2.0 * np.pi * kp) - _stirlerr(kp)
    return out


def _stirlerr(k: np.ndarray) -> np.ndarray:
    """lgamma(k + 1) - (k·log k - k + log(2πk)/2) for k >= 1: exact below 16, series above."""
    from scipy.special import gammaln

    out = np.empty_like(k)
    small = k < 16
    ks = k[small]
    out[small] = gammaln(ks + 1.0) - (ks * np.log(ks) - ks + 0.5 * np.log(2.0 * np.pi * ks))
    kl = k[~small]
    inv, inv2 = 1.0 / kl, 1.0 / (kl * kl)
    out[~small] = inv * (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 / 1680)))
    return out
