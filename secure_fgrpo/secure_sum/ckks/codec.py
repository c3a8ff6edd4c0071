"""Vectors <-> ciphertext chunks, and strict loading of chunks that arrive.

BFV (default): fixed point. A data coordinate is divided by the unit ``data_bound/H`` and the
weight by ``weight_bound/H``, ``H = (t//2 - n)/n``, then rounded, so the sum of
``n = len(participants)`` inputs never wraps modulo ``t``; decryption returns the integer sum
exactly and the only error is the client-side rounding (at most half a unit per coordinate).

CKKS: each coordinate is divided by its bound (data coordinates by ``data_bound/sqrt(dim-1)``
(capped), the weight by ``weight_bound``) and two reals share one complex slot, so a ciphertext
holds N reals.

Encryption is symmetric and seeded (SEAL's ``encrypt_symmetric`` -> ``Serializable``): only
``c0`` and a PRNG seed travel, which halves the bytes. TenSEAL's own vectors serialise the
full ciphertext, hence the use of ``tenseal.sealapi`` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as seal  # SEAL bindings shipped with TenSEAL

from ..base import SumSpec
from .keys import KeyMaterial, plain_modulus
from .params import ParamSet
from .sealio import SEAL_HEADER, SealIO, check_seal_header, zstd_content_size


@dataclass(frozen=True)
class Level:
    """Where a ciphertext must sit: SEAL parms_id, number of primes, CKKS scale (BFV: 1.0)."""

    parms_id: tuple[int, ...]
    primes: int
    scale: float

    def max_bytes(self, n: int, size: int = 2) -> int:
        return size * n * self.primes * 8 + 4096


def level_at(seal_ctx: Any, primes: int) -> tuple[tuple[int, ...], list[int]]:
    """parms_id and prime values of the chain level holding ``primes`` data primes."""
    data = seal_ctx.first_context_data()
    while data is not None:
        mods = [m.value() for m in data.parms().coeff_modulus()]
        if len(mods) == primes:
            return tuple(data.parms_id()), mods
        data = data.next_context_data()
    raise ValueError(f"no level with {primes} primes in this context")


class Codec:
    """Encodes, encrypts, decrypts and strictly loads ciphertexts for one party.

    ``gain_clip``/``exp_shift`` are set in weights = server mode only: the client then encrypts
    ``u = g/G`` and the decoded sum is multiplied back by ``exp(exp_shift)``.
    """

    def __init__(self, keys: KeyMaterial, params: ParamSet, spec: SumSpec, *,
                 weights_on_server: bool = False, gain_clip: float = 0.0, exp_shift: float = 0.0) -> None:
        self.keys, self.params, self.spec = keys, params, spec
        self.ctx = keys.seal_context
        self.n = params.poly_modulus_degree
        self.dim = spec.dim
        self.n_chunks = math.ceil(self.dim / params.reals_per_ciphertext)
        self.weights_on_server = weights_on_server
        self.gain_clip, self.exp_shift = gain_clip, exp_shift
        self.io = SealIO()
        self._content_sizes: dict[tuple[tuple[int, ...], bool], int] = {}
        n_max = len(spec.participants)
        if n_max > params.max_clients:
            raise ValueError(f"{n_max} participants exceed params {params.name!r} max_clients={params.max_clients}")
        top = params.data_primes
        if params.scheme == "bfv":
            self.t = plain_modulus(params)
            # 1e-6 of slack covers SumSpec.check_input's own tolerance at the bound.
            half = (self.t // 2 - n_max) / (n_max * (1 + 1e-6))
            self.data_unit, self.weight_unit = spec.data_bound / half, spec.weight_bound / half
            self.encoder: Any = seal.BatchEncoder(self.ctx)
            self.input_level = Level(*_pid(self.ctx, top), 1.0)
            self.sum_level = self.input_level
        else:
            self.t = 0
            # A coordinate of a vector with L2 norm <= B is typically B/sqrt(d): dividing by
            # B/sqrt(d) instead of B keeps values near 1, where CKKS's absolute noise is
            # small relative to them. The cap keeps |sum| < 2^17 inside the 60-bit prime.
            spread = max(1.0, min(math.sqrt(max(self.dim - 1, 1)), 2.0 ** 17 / n_max))
            self.data_unit, self.weight_unit = spec.data_bound / spread, spec.weight_bound
            self.encoder = seal.CKKSEncoder(self.ctx)
            s = 2.0 ** params.scale_bits
            if weights_on_server:
                self.gain_level = Level(*_pid(self.ctx, top), s)
                pid1, mods1 = level_at(self.ctx, 2)
                self.input_level = Level(pid1, 2, s)
                # Enc(p(u)) arrives at scale s, times the delta at scale s, rescaled by the
                # last prime of the 2-prime level (see poly.py).
                self.sum_level = Level(*_pid(self.ctx, 1), (s * s) / float(mods1[-1]))
            else:
                self.input_level = Level(*_pid(self.ctx, top), s)
                self.sum_level = self.input_level
        sk = keys.secret_key
        self._encryptor = seal.Encryptor(self.ctx, sk) if sk is not None else None
        self._decryptor = seal.Decryptor(self.ctx, sk) if sk is not None else None

    # ------------------------------------------------------------------ client: encrypt
    def encrypt_input(self, vector: np.ndarray) -> tuple[list[bytes], bytes | None]:
        """Seeded ciphertext chunks of ``vector`` (+ the gain ciphertext in weights mode)."""
        if self._encryptor is None:
            raise RuntimeError("this party holds no secret key and cannot encrypt")
        gain = None
        if self.weights_on_server:
            u = float(vector[-1]) / self.gain_clip
            pt = seal.Plaintext()
            self.encoder.encode(u, list(self.gain_level.parms_id), self.gain_level.scale, pt)
            gain = self.io.dump(self._encryptor.encrypt_symmetric(pt))
            vector = vector[:-1]
        chunks = []
        for values in self._plain_chunks(np.asarray(vector, dtype=np.float64)):
            pt = seal.Plaintext()
            if self.params.scheme == "bfv":
                self.encoder.encode(values, pt)
            else:
                self.encoder.encode(values, list(self.input_level.parms_id), self.input_level.scale, pt)
            chunks.append(self.io.dump(self._encryptor.encrypt_symmetric(pt)))
        return chunks, gain

    def encode_integers(self, vector: np.ndarray) -> np.ndarray:
        """BFV fixed point: the signed integers that get encrypted (exposed for exact tests)."""
        return np.rint(self.to_units(vector)).astype(np.int64)

    def to_units(self, vector: np.ndarray) -> np.ndarray:
        """Divide data coordinates by ``data_unit`` and the weight by ``weight_unit``."""
        out = vector / self.data_unit
        out[-1] = vector[-1] / self.weight_unit
        return out

    def from_units(self, values: np.ndarray) -> np.ndarray:
        out = values * self.data_unit
        out[-1] = values[-1] * self.weight_unit
        return out

    def _plain_chunks(self, vector: np.ndarray) -> list[np.ndarray]:
        per = self.params.reals_per_ciphertext
        if self.params.scheme == "bfv":
            ints = self.encode_integers(vector)
            flat = np.zeros(self.n_chunks * per, dtype=np.uint64)
            flat[: self.dim] = np.where(ints < 0, ints + self.t, ints).astype(np.uint64)
            return [flat[i * per:(i + 1) * per] for i in range(self.n_chunks)]
        y = np.zeros(self.n_chunks * per, dtype=np.float64)
        y[: self.dim] = self.to_units(vector)
        z = y[0::2] + 1j * y[1::2]
        half = per // 2
        return [z[i * half:(i + 1) * half] for i in range(self.n_chunks)]

    # ------------------------------------------------------------------ client: decrypt
    def decrypt_integers(self, cts: list[Any]) -> np.ndarray:
        """BFV: the exact integer sum, centred into (-t/2, t/2]."""
        if self._decryptor is None or self.params.scheme != "bfv":
            raise RuntimeError("decrypt_integers needs a BFV secret context")
        out = np.empty(self.n_chunks * self.n, dtype=np.uint64)
        for i, ct in enumerate(cts):
            pt = seal.Plaintext()
            self._decryptor.decrypt(ct, pt)
            out[i * self.n:(i + 1) * self.n] = self.encoder.decode_uint64(pt)
        v = out[: self.dim].astype(np.int64)
        return np.where(v > self.t // 2, v - self.t, v)

    def decrypt_sum(self, cts: list[Any]) -> np.ndarray:
        """Decrypt the summed chunks into ``[Σ e_i·Δ_i, Σ e_i]`` (float64, length dim)."""
        if self._decryptor is None:
            raise RuntimeError("this party holds no secret key and cannot decrypt")
        if self.params.scheme == "bfv":
            return self.from_units(self.decrypt_integers(cts).astype(np.float64))
        half = self.n // 2
        z = np.empty(self.n_chunks * half, dtype=np.complex128)
        for i, ct in enumerate(cts):
            pt = seal.Plaintext()
            self._decryptor.decrypt(ct, pt)
            z[i * half:(i + 1) * half] = self.encoder.decode_complex(pt)
        y = np.empty(2 * z.size, dtype=np.float64)
        y[0::2], y[1::2] = z.real, z.imag
        out = self.from_units(y[: self.dim])
        return out * math.exp(self.exp_shift) if self.weights_on_server else out

    # ------------------------------------------------------------------ both: load / dump
    def content_size(self, level: Level, seeded: bool) -> int:
        """Bytes of SEAL content in an honest ciphertext at ``level`` (fixed by the parameters):
        measured once on a throwaway key, since the server holds no key to encrypt with."""
        key = (level.parms_id, seeded)
        if key not in self._content_sizes:
            scratch = seal.Encryptor(self.ctx, seal.KeyGenerator(self.ctx).secret_key())
            pt = seal.Plaintext()
            if self.params.scheme == "bfv":
                self.encoder.encode([0] * self.n, pt)
            else:
                self.encoder.encode([0.0] * (self.n // 2), list(level.parms_id), level.scale, pt)
            if seeded:
                blob = self.io.dump(scratch.encrypt_symmetric(pt))
            else:
                ct = seal.Ciphertext()
                scratch.encrypt_symmetric(pt, ct)
                blob = self.io.dump(ct)
            size = zstd_content_size(blob[SEAL_HEADER.size:])
            if size is None:
                raise RuntimeError("SEAL wrote a ciphertext without a zstd content size")
            self._content_sizes[key] = size
        return self._content_sizes[key]

    def load(self, blob: bytes | memoryview, level: Level, what: str, *, seeded: bool = True) -> Any:
        """Parse one ciphertext strictly; raise ValueError with a reason naming ``what``.

        ``seeded``: a client's fresh symmetric ciphertext (only c0 and a seed travel)."""
        reason = check_seal_header(blob, level.max_bytes(self.n, size=3), self.content_size(level, seeded))
        if reason:
            raise ValueError(f"{what}: {reason}")
        ct = seal.Ciphertext()
        try:
            self.io.load(ct, self.ctx, blob)
        except Exception:  # SEAL raises several types for invalid data
            raise ValueError(f"{what}: not a valid ciphertext for this context (other parameters or corrupt)") from None
        if tuple(ct.parms_id()) != level.parms_id:
            raise ValueError(f"{what}: ciphertext at the wrong level or from another context")
        if ct.size() != 2:
            raise ValueError(f"{what}: ciphertext has size {ct.size()}, expected 2")
        if self.params.scheme == "ckks" and not math.isclose(ct.scale, level.scale, rel_tol=1e-12):
            raise ValueError(f"{what}: CKKS scale {ct.scale:.6g} differs from the agreed {level.scale:.6g}")
        return ct

    def dump(self, ct: Any) -> bytes:
        return self.io.dump(ct)


def _pid(seal_ctx: Any, primes: int) -> tuple[tuple[int, ...], int]:
    pid, _ = level_at(seal_ctx, primes)
    return pid, primes
