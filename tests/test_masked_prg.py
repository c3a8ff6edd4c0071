"""The mask PRG: deterministic per seed, different across seeds, uniform, masks cancel."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import stats

from secure_fgrpo.secure_sum.masked.prg import PRGS, KeystreamPRG


@pytest.mark.parametrize("name", PRGS)
@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_deterministic_and_seed_dependent(name: str, dtype: type) -> None:
    prg = KeystreamPRG(name, 1000, dtype)
    seed = os.urandom(32)
    a, b = prg.expand(seed), prg.expand(seed)
    assert a.dtype == np.dtype(dtype) and a.shape == (1000,)
    assert np.array_equal(a, b)
    other = prg.expand(os.urandom(32))
    assert np.mean(a == other) < 0.01


def test_the_two_prgs_differ_and_match_the_cipher() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    seed = bytes(range(32))
    aes = KeystreamPRG("aes-ctr", 8).expand(seed)
    chacha = KeystreamPRG("chacha20", 8).expand(seed)
    assert not np.array_equal(aes, chacha)
    ref = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor().update(bytes(32))
    assert aes.tobytes() == ref


@pytest.mark.parametrize("name", PRGS)
def test_add_then_subtract_cancels_modulo_word(name: str) -> None:
    prg = KeystreamPRG(name, 5000)
    acc = np.arange(5000, dtype=np.uint32)
    seeds = [os.urandom(32) for _ in range(4)]
    for s in seeds:
        prg.add_into(acc, s, +1)
    assert not np.array_equal(acc, np.arange(5000, dtype=np.uint32))
    for s in reversed(seeds):
        prg.add_into(acc, s, -1)
    assert np.array_equal(acc, np.arange(5000, dtype=np.uint32))


@pytest.mark.parametrize("name", PRGS)
def test_keystream_bytes_are_uniform(name: str) -> None:
    words = KeystreamPRG(name, 250_000).expand(os.urandom(32))
    counts = np.bincount(words.view(np.uint8), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-4
    top = np.bincount((words >> 24).astype(np.int64), minlength=256)
    assert stats.chisquare(top).pvalue > 1e-4


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown PRG"):
        KeystreamPRG("rc4", 10)
    with pytest.raises(ValueError, match="32 bytes"):
        KeystreamPRG("aes-ctr", 10).expand(b"short")
    with pytest.raises(ValueError, match="unsigned"):
        KeystreamPRG("aes-ctr", 10, np.int32)
