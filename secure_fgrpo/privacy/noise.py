"""Secret randomness for DP: Gaussian noise and Bernoulli draws from a ChaCha20 keystream keyed
by ``os.urandom``.

DP noise must be unpredictable to whoever sees the released value — a seeded simulation RNG
would let anyone who knows the seed subtract it — so it never comes from numpy's or torch's
generators. Each Gaussian is the sum of four Box–Muller normals divided by two, the remedy
Opacus' ``secure_mode`` applies against attacks on the floating-point representation of a
single textbook Gaussian sample (Mironov 2012; Holohan & Braghin 2021).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

_KEY_BYTES = 32
_NONCE = bytes(16)  # each generator has a fresh random key, so one nonce per key is enough


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
        return torch.from_numpy(self.normal(ref.numel(), std)).to(ref.dtype).view_as(ref)

    def bernoulli(self, n: int, p: float) -> np.ndarray:
        """n independent coin flips with P(True) = p."""
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        return self.uniform(n) < p
