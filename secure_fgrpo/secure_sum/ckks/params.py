"""Encryption parameter sets and the check of their security level.

Every set is checked against the HomomorphicEncryption.org standard (Albrecht et al., 2018,
Table 1, ternary secret, classical attacks): for a ring degree N, 128-bit security holds while
the total coefficient-modulus size log2(q·p) stays at or below the bound below. SEAL enforces
the same table at context creation, so a set that passes here is also accepted by TenSEAL.

Why these sets: a sum needs no multiplicative depth, so a ciphertext carries a single data prime
(the second prime is SEAL's key-switching prime, which never travels). With symmetric, seeded
encryption only ``c0`` is sent, i.e. ``N·8`` bytes per ciphertext; BFV batching holds ``N``
integers, CKKS with two reals packed per complex slot holds ``N`` reals: 8 bytes per parameter
either way. The server-side weight evaluation needs ``depth(poly) + 1`` extra levels, but the
client's delta is encoded directly at the level where it gets multiplied (two primes: 16 B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Scheme = Literal["bfv", "ckks"]

# HE standard, 128-bit classical security, uniform ternary secret: max log2(q) per N.
HE_STANDARD_128: dict[int, int] = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}


class ParamsError(ValueError):
    """A parameter set is inconsistent or below the claimed security level."""


@dataclass(frozen=True)
class ParamSet:
    """One encryption parameter set.

    ``coeff_mod_bit_sizes`` lists the data primes first and the special (key-switching) prime
    last, as SEAL expects. ``plain_modulus_bits`` is BFV's batching prime size; ``scale_bits``
    is CKKS's encoding scale. ``max_clients`` bounds how many ciphertexts may be summed while
    decryption stays exact (BFV noise) or the sum stays inside the modulus (CKKS).
    """

    name: str
    scheme: Scheme
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    plain_modulus_bits: int = 0
    scale_bits: int = 40
    max_clients: int = 1024
    security_bits: int = 128

    def __post_init__(self) -> None:
        if self.scheme not in ("bfv", "ckks"):
            raise ParamsError(f"params {self.name!r}: scheme must be 'bfv' or 'ckks', got {self.scheme!r}")
        if len(self.coeff_mod_bit_sizes) < 2:
            raise ParamsError(f"params {self.name!r}: need at least one data prime and the special prime")
        if any(not 20 <= b <= 60 for b in self.coeff_mod_bit_sizes):
            raise ParamsError(f"params {self.name!r}: every prime must have 20..60 bits")
        if self.scheme == "bfv" and not 17 <= self.plain_modulus_bits < self.coeff_mod_bit_sizes[0]:
            raise ParamsError(f"params {self.name!r}: BFV plain modulus bits must be in [17, first prime)")
        if self.scheme == "ckks" and not self.scale_bits < self.coeff_mod_bit_sizes[0]:
            raise ParamsError(f"params {self.name!r}: CKKS scale must be below the first prime")
        check_security(self)

    @property
    def total_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def data_primes(self) -> int:
        """Primes a fresh ciphertext at the top level carries (all but the special prime)."""
        return len(self.coeff_mod_bit_sizes) - 1

    @property
    def reals_per_ciphertext(self) -> int:
        """BFV: N batching slots; CKKS: N/2 complex slots, two reals each."""
        return self.poly_modulus_degree

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name, "scheme": self.scheme, "N": self.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes), "total_bits": self.total_bits,
            "max_bits_128": HE_STANDARD_128[self.poly_modulus_degree],
            "plain_modulus_bits": self.plain_modulus_bits, "scale_bits": self.scale_bits,
            "security_bits": self.security_bits, "max_clients": self.max_clients,
        }


def check_security(p: ParamSet) -> None:
    """Refuse a set whose modulus exceeds the HE-standard bound for its ring degree."""
    if p.security_bits != 128:
        raise ParamsError(f"params {p.name!r}: only the 128-bit table is encoded, got {p.security_bits}")
    bound = HE_STANDARD_128.get(p.poly_modulus_degree)
    if bound is None:
        raise ParamsError(f"params {p.name!r}: N={p.poly_modulus_degree} not in the HE standard table")
    if p.total_bits > bound:
        raise ParamsError(
            f"params {p.name!r}: log2(q)={p.total_bits} > {bound}, below 128-bit security for N={p.poly_modulus_degree}"
        )


# BFV: t is a 41-bit batching prime; one 60-bit data prime leaves ~14 bits of noise budget for
# a fresh symmetric ciphertext (measured with SEAL's invariant_noise_budget), and a sum of n
# costs at most log2(n) bits, so 1024 clients keep >= 3 bits.
BFV_4096 = ParamSet("bfv-4096", "bfv", 4096, (60, 40), plain_modulus_bits=41, max_clients=1024)
# CKKS for the plain sum: scale 2^40 in a 60-bit prime leaves 2^19 of headroom for sums of
# values normalised to [-1, 1].
CKKS_4096 = ParamSet("ckks-4096", "ckks", 4096, (60, 40), scale_bits=40, max_clients=1 << 16)
# NVFlare's default TenSEAL settings, kept for the side-by-side benchmark.
NVFLARE = ParamSet("nvflare", "ckks", 8192, (60, 40, 40), scale_bits=40, max_clients=1 << 16)

PRESETS: dict[str, ParamSet] = {p.name: p for p in (BFV_4096, CKKS_4096, NVFLARE)}
DEFAULT_FOR_SCHEME: dict[str, str] = {"bfv": BFV_4096.name, "ckks": CKKS_4096.name}


def poly_depth(degree: int) -> int:
    """Levels the power-basis evaluation in poly.py consumes for a degree-``degree`` polynomial."""
    if degree < 1:
        raise ParamsError(f"poly_degree must be >= 1, got {degree}")
    return max(1, math.ceil(math.log2(degree + 1)))


def weights_params(degree: int) -> ParamSet:
    """CKKS set for weights evaluated by the server: the gain ciphertext enters at the top,
    ``poly_depth`` levels yield Enc(p(g)), one more multiplies the delta, one prime remains."""
    depth = poly_depth(degree)
    bits = (60,) + (40,) * (depth + 1) + (60,)
    total = sum(bits)
    n = next((n for n in sorted(HE_STANDARD_128) if n >= 8192 and HE_STANDARD_128[n] >= total), None)
    if n is None:
        raise ParamsError(f"poly_degree {degree} needs {total} modulus bits: too deep for 128-bit security")
    return ParamSet(f"ckks-weights-d{degree}", "ckks", n, bits, scale_bits=40, max_clients=1 << 16)


def resolve(name: str | None, scheme: str | None, weights: str, degree: int) -> ParamSet:
    """Pick the parameter set from the backend options; refuse inconsistent combinations."""
    if weights == "server":
        if scheme not in (None, "ckks"):
            raise ParamsError("secure_sum.options.scheme: weights = 'server' needs CKKS (polynomial evaluation)")
        wp = weights_params(degree)
        if name not in (None, wp.name):
            raise ParamsError(f"secure_sum.options.params: weights = 'server' uses {wp.name!r} "
                              f"(derived from poly_degree), got {name!r}")
        return wp
    if scheme is not None and scheme not in DEFAULT_FOR_SCHEME:
        raise ParamsError(f"secure_sum.options.scheme: {scheme!r} is not one of 'bfv', 'ckks'")
    if name is None:
        return PRESETS[DEFAULT_FOR_SCHEME[scheme or "bfv"]]
    if name not in PRESETS:
        raise ParamsError(f"secure_sum.options.params: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[name]
    if scheme is not None and chosen.scheme != scheme:
        raise ParamsError(f"secure_sum.options.params: preset {name!r} is {chosen.scheme}, but scheme = {scheme!r}")
    return chosen
