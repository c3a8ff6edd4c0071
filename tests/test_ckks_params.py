"""Parameter sets: security level checked against the HE standard, and the options parser."""

from __future__ import annotations

import pytest
import tenseal as ts

from secure_fgrpo.secure_sum import make_backend
from secure_fgrpo.secure_sum.ckks.params import (
    HE_STANDARD_128,
    PRESETS,
    ParamsError,
    ParamSet,
    poly_depth,
    resolve,
    weights_params,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_within_the_128_bit_table(name: str) -> None:
    p = PRESETS[name]
    assert p.total_bits <= HE_STANDARD_128[p.poly_modulus_degree]
    assert p.describe()["max_bits_128"] == HE_STANDARD_128[p.poly_modulus_degree]


def test_oversized_modulus_is_refused_by_us_and_by_seal() -> None:
    with pytest.raises(ParamsError, match="below 128-bit security"):
        ParamSet("too-big", "bfv", 4096, (60, 60), plain_modulus_bits=30)
    # SEAL (through TenSEAL) refuses the same set at its default 128-bit level: the two agree.
    with pytest.raises(ValueError):
        ts.context(ts.SCHEME_TYPE.BFV, 4096, 786433, [60, 60], encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC)


@pytest.mark.parametrize("degree,depth,n", [(1, 1, 8192), (3, 2, 16384), (7, 3, 16384), (15, 4, 16384)])
def test_weights_params_follow_the_polynomial_depth(degree: int, depth: int, n: int) -> None:
    assert poly_depth(degree) == depth
    p = weights_params(degree)
    assert p.data_primes == depth + 2  # gain level, `depth` levels of p(u), one for x delta
    assert p.poly_modulus_degree == n
    assert p.total_bits <= HE_STANDARD_128[n]


def test_resolve_picks_defaults_and_refuses_mismatches() -> None:
    assert resolve(None, None, "client", 15).name == "bfv-4096"
    assert resolve(None, "ckks", "client", 15).name == "ckks-4096"
    assert resolve(None, None, "server", 7).name == "ckks-weights-d7"
    with pytest.raises(ParamsError, match="needs CKKS"):
        resolve(None, "bfv", "server", 7)
    with pytest.raises(ParamsError, match="is ckks"):
        resolve("ckks-4096", "bfv", "client", 15)
    with pytest.raises(ParamsError, match="unknown preset"):
        resolve("bfv-1024", None, "client", 15)


def test_backend_options_name_the_bad_key() -> None:
    with pytest.raises(ValueError, match=r"unknown option.*revael"):
        make_backend("ckks", {"revael": "server-blind"})
    with pytest.raises(ValueError, match=r"secure_sum.options.reveal"):
        make_backend("ckks", {"reveal": "nobody"})
    with pytest.raises(ValueError, match=r"secure_sum.options.tau"):
        make_backend("ckks", {"weights": "server", "gain_clip": 2.0})
    with pytest.raises(ValueError, match="only apply to weights"):
        make_backend("ckks", {"tau": 1.0})
    with pytest.raises(ValueError, match="decryptors"):
        make_backend("ckks", {"decryptors": 0})
    b = make_backend("ckks", {"reveal": "server-blind", "scheme": "ckks", "decryptors": 2})
    assert b.params.name == "ckks-4096" and b.mode.blind and b.mode.decryptors == 2
