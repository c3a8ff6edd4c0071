"""A slice of the protocol fuzz (benchmarks/masked_fuzz.py runs 11,000 rounds): one mutated
message per round, any stage and direction; nothing escapes the driver and a completed round
sums exactly. Also shows the fuzz has teeth: without the masked-input signature a flipped bit
in a masked vector changes the sum unnoticed."""

from __future__ import annotations

from pathlib import Path

from secure_fgrpo.secure_sum.masked import fuzz
from secure_fgrpo.secure_sum.masked.simulate import make_spec


def test_fuzz_slice_complete_graph(tmp_path: Path) -> None:
    rep = fuzz.run(tmp_path, make_spec(5, 8, 4, round_=1), {}, 80, seed=7)
    assert rep.failures == [] and rep.trials == 80
    assert set(rep.by_stage) == {"advertise", "share", "masked_input", "consistency", "unmask"}


def test_fuzz_slice_ring(tmp_path: Path) -> None:
    rep = fuzz.run(
        tmp_path, make_spec(12, 8, 8, round_=1), {"degree": 4, "policy": {"gamma": 0.1, "delta": 0.2}}, 20, seed=8
    )
    assert rep.failures == []


def test_an_unsigned_masked_vector_can_be_changed_in_transit(tmp_path: Path) -> None:
    """Teeth: unsigned (honest-but-curious mode), a bit flip in a masked input is not caught."""
    spec = make_spec(5, 8, 4, round_=1)
    how = fuzz.Mutation("masked_input", "to_server", spec.participants[2], "bitflip", 3424324670)
    status, _ = fuzz.trial(tmp_path, spec, _backend(tmp_path, {"signed": False}, spec), how)
    assert status == "wrong-sum"
    status, _ = fuzz.trial(tmp_path / "s", spec, _backend(tmp_path / "s", {}, spec), how)
    assert status == "exact"  # signed: the tampered input is rejected, the others sum exactly


def _backend(folder: Path, options: dict, spec):
    from secure_fgrpo.secure_sum.masked import MaskedBackend

    be = MaskedBackend(**options)
    be.setup(folder, list(spec.participants))
    return be
