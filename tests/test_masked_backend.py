"""Options, identities and roster: what ``make_backend("masked", options)`` accepts and refuses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.secure_sum import SumSpec, make_backend, run_secure_sum
from secure_fgrpo.secure_sum.masked import OPTIONS, MaskedBackend, client_state_dir, server_state_dir
from secure_fgrpo.secure_sum.masked.keys import identity_path
from secure_fgrpo.secure_sum.masked.simulate import make_round, make_spec
from secure_fgrpo.secure_sum.transcript import TranscriptRecorder, read_transcript

NAMES = ["st-mary", "northgate", "riverside", "lakeside"]


def _spec(round_: int = 1, threshold: int = 3) -> SumSpec:
    return SumSpec(round=round_, dim=20, data_bound=1.0, weight_bound=5.0,
                   participants=tuple(sorted(NAMES)), threshold=threshold)


def test_options_are_exactly_these() -> None:
    assert OPTIONS == ("signed", "roster", "degree", "modulus_bits", "prg", "scale", "max_error", "policy",
                       "client_policies")


@pytest.mark.parametrize("options, match", [
    ({"bogus": 1}, "bogus"),
    ({"threshold_fraction": 0.5, "zeta": 1}, "threshold_fraction, zeta"),
    ({"signed": "yes"}, "signed"),
    ({"modulus_bits": 16}, "modulus_bits"),
    ({"modulus_bits": True}, "modulus_bits"),
    ({"prg": "rc4"}, "prg"),
    ({"degree": 2.5}, "degree"),
    ({"degree": 0}, "degree"),
    ({"scale": 0}, "scale"),
    ({"max_error": "small"}, "max_error"),
    ({"roster": 5}, "roster"),
    ({"roster": "r.json", "signed": False}, "signed = false"),
])
def test_bad_options_are_refused_by_name(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_backend("masked", options)


def test_setup_creates_private_identities_and_a_roster(tmp_path: Path) -> None:
    backend = make_backend("masked")
    backend.setup(tmp_path, NAMES)
    for n in NAMES:
        path = identity_path(client_state_dir(tmp_path, n))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    roster_path = server_state_dir(tmp_path) / "masked" / "roster.json"
    first = json.loads(roster_path.read_text())
    assert sorted(first["clients"]) == sorted(NAMES)
    make_backend("masked").setup(tmp_path, NAMES)  # a resumed run keeps the same identities
    assert json.loads(roster_path.read_text()) == first


def test_full_round_through_the_registry_and_the_project_transcript(tmp_path: Path) -> None:
    backend = make_backend("masked", {"prg": "chacha20"})
    backend.setup(tmp_path, NAMES)
    spec = _spec()
    rng = np.random.default_rng(0)
    clients, total = {}, np.zeros(spec.dim)
    for n in spec.participants:
        v = rng.uniform(-0.1, 0.1, spec.dim)
        v[-1] = 2.0
        clients[n] = backend.client(n, spec, client_state_dir(tmp_path, n))
        clients[n].set_input(v)
        total += v
    recorder = TranscriptRecorder(tmp_path / "server" / "transcript.jsonl")
    out = run_secure_sum(backend.server(spec, server_state_dir(tmp_path)), clients, recorder)
    assert out.contributors == spec.participants
    assert np.abs(out.total - total).max() <= out.stats["quantisation_bound"]
    entries = list(read_transcript(tmp_path / "server" / "transcript.jsonl"))
    assert len(entries) == 5 * len(NAMES)
    assert {e.stage for e in entries} == set(backend.server(spec, server_state_dir(tmp_path)).stages)


def test_configured_roster_is_used_and_checked(tmp_path: Path) -> None:
    make_backend("masked").setup(tmp_path, NAMES)
    roster = server_state_dir(tmp_path) / "masked" / "roster.json"
    backend = make_backend("masked", {"roster": str(roster)})
    backend.setup(tmp_path, NAMES)  # only checks coverage
    with pytest.raises(ValueError, match="no key for zed"):
        backend.setup(tmp_path, [*NAMES, "zed"])
    sim = make_round(tmp_path, _spec(2), backend=backend)
    assert sim.clients[NAMES[0]].ctx.signed
    # A client whose key file does not match its roster entry is refused.
    other = tmp_path / "elsewhere"
    make_backend("masked").setup(other, NAMES)
    with pytest.raises(ValueError, match="does not match"):
        backend.client(NAMES[0], _spec(2), client_state_dir(other, NAMES[0]))


def test_signed_without_roster_is_refused(tmp_path: Path) -> None:
    backend = make_backend("masked")
    with pytest.raises(ValueError, match="needs a roster"):
        backend.client(NAMES[0], _spec(), tmp_path)
    unsigned = make_backend("masked", {"signed": False})
    assert unsigned.client(NAMES[0], _spec(), tmp_path).ctx.roster is None


def test_round_parameters_are_checked_when_a_round_starts(tmp_path: Path) -> None:
    backend = MaskedBackend(signed=False, max_error=1e-12)
    with pytest.raises(ValueError, match="max_error"):
        backend.server(_spec(), tmp_path)
    with pytest.raises(ValueError, match=r"security.gamma: threshold 2 of 4"):
        MaskedBackend(signed=False).server(_spec(threshold=2), tmp_path)  # below its own policy
    with pytest.raises(ValueError, match="could wrap"):
        MaskedBackend(signed=False, scale=2.0 ** 30).client(NAMES[0], _spec(), tmp_path)
    with pytest.raises(ValueError, match="not a participant"):
        MaskedBackend(signed=False).client("zed", _spec(), tmp_path)


def test_spec_digest_binds_parameters(tmp_path: Path) -> None:
    """Two parties with different parameters cannot agree on anything (different digests)."""
    a = make_round(tmp_path, make_spec(4, 10, 3), {"signed": False})
    b = MaskedBackend(signed=False, modulus_bits=64).client("client-000", make_spec(4, 10, 3), tmp_path)
    assert a.clients["client-000"].ctx.digest != b.ctx.digest
