"""The mask PRG: a stream cipher keystream (AES-256-CTR or ChaCha20) read as machine words.

Masks are whole-vector keystreams, so the cost is one cipher pass per seed (AES-NI / the
OpenSSL ChaCha20 code path run at several GB/s) plus a numpy view: no Python loop per word.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PRGName = Literal["aes-ctr", "chacha20"]
PRGS: tuple[str, ...] = ("aes-ctr", "chacha20")
SEED_BYTES = 32
_ZERO_IV = bytes(16)


def _encryptor(name: str, seed: bytes):
    if len(seed) != SEED_BYTES:
        raise ValueError(f"PRG seed must have {SEED_BYTES} bytes, got {len(seed)}")
    if name == "aes-ctr":
        return Cipher(algorithms.AES(seed), modes.CTR(_ZERO_IV)).encryptor()
    if name == "chacha20":
        return Cipher(algorithms.ChaCha20(seed, _ZERO_IV), mode=None).encryptor()
    raise ValueError(f"unknown PRG {name!r}; choose one of {', '.join(PRGS)}")


class KeystreamPRG:
    """Expands 32-byte seeds into word vectors; reuses one zero buffer across calls.

    Each seed must be used for one vector only (seeds are per-round, per-purpose HKDF outputs),
    so the fixed zero IV never repeats a (key, counter) pair across different purposes.
    """

    def __init__(self, name: str, words: int, dtype: np.dtype | type = np.uint32) -> None:
        self.name = name
        self.dtype = np.dtype(dtype).newbyteorder("<")
        if self.dtype.kind != "u":
            raise ValueError(f"PRG words must be unsigned integers, got {self.dtype}")
        self.words = int(words)
        self.nbytes = self.words * self.dtype.itemsize
        self._zeros = bytes(self.nbytes)
        self._buf: bytearray | None = None  # reused output buffer (update_into: no allocation)
        _encryptor(name, bytes(SEED_BYTES))  # validate the name early

    def expand(self, seed: bytes) -> np.ndarray:
        """Keystream of ``seed`` as a fresh, read-only word array (uniform over the word range)."""
        stream = _encryptor(self.name, seed).update(self._zeros)
        return np.frombuffer(stream, dtype=self.dtype, count=self.words)

    def expand_scratch(self, seed: bytes) -> np.ndarray:
        """Like :meth:`expand`, into this PRG's one buffer: valid until the next call."""
        if self._buf is None:
            self._buf = bytearray(self.nbytes + 64)  # update_into wants block_size - 1 spare bytes
        _encryptor(self.name, seed).update_into(self._zeros, self._buf)
        return np.frombuffer(self._buf, dtype=self.dtype, count=self.words)

    def dither(self, seed: bytes) -> np.ndarray:
        """``words`` uniform uint32 values (stochastic rounding), in the scratch buffer."""
        return self.expand_scratch(seed).view("<u4")[: self.words]

    def add_into(self, acc: np.ndarray, seed: bytes, sign: int) -> None:
        """``acc += sign * PRG(seed)`` modulo the word size, in place."""
        mask = self.expand_scratch(seed)
        if sign > 0:
            np.add(acc, mask, out=acc)
        else:
            np.subtract(acc, mask, out=acc)
