"""Issue 13 items 6 and 7: bad inputs are refused naming the field, and the server refuses an
aggregate that no honest inputs could produce (a client that skipped its own checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.federation.release import release_round
from secure_fgrpo.secure_sum import SumSpec, make_backend
from secure_fgrpo.secure_sum.masked import MaskedBackend
from secure_fgrpo.secure_sum.masked.client import MaskedClient
from secure_fgrpo.secure_sum.masked.simulate import ListRecorder, make_spec, random_input


def _spec(**changes: object) -> SumSpec:
    base = dict(round=1, dim=4, data_bound=1.0, weight_bound=2.0, participants=("a", "b", "c"), threshold=2)
    base.update(changes)
    return SumSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["data_bound", "weight_bound"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.0, -1.0, True])
def test_spec_refuses_non_finite_bounds_naming_the_field(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"SumSpec.{key} must be a finite number > 0"):
        _spec(**{key: value})


@pytest.mark.parametrize("backend", ["plaintext", "masked"])
def test_complex_and_list_inputs(tmp_path: Path, backend: str) -> None:
    spec = _spec()
    be = make_backend(backend, {"signed": False} if backend == "masked" else {})
    client = be.client("a", spec, tmp_path)
    with pytest.raises(ValueError, match="a: input has dtype complex128; expected real numbers"):
        client.set_input(np.array([0.1, 0.1j, 0.0, 1.0]))
    with pytest.raises(ValueError, match="a: input has dtype"):
        client.set_input(["x", "y", "z", "w"])  # type: ignore[arg-type]
    client.set_input([0.1, 0.2, 0.0, 1.0])  # a plain list of reals is fine, not an AttributeError
    with pytest.raises(ValueError, match=r"a: input has shape \(3,\)"):
        client.set_input([0.1, 0.2, 1.0])


class _SkipsChecks(MaskedClient):
    """A malicious client: encodes whatever it likes, without SumSpec.check_input."""

    def set_input(self, vector: np.ndarray) -> None:
        self._words = self.ctx.fixed.encode(np.asarray(vector, dtype=np.float64),
                                            np.zeros(self.spec.dim, dtype=np.uint32))


class _Backend(MaskedBackend):
    def __init__(self, cheat: str, **options: object) -> None:
        super().__init__(**options)
        self.cheat = cheat

    def client(self, name, spec, state_dir, noise=None):
        c = super().client(name, spec, state_dir, noise)
        if name == self.cheat:
            c.__class__ = _SkipsChecks
        return c


def _release(tmp_path: Path, bad: np.ndarray | None) -> object:
    spec = make_spec(5, 30, 4, data_bound=1.0, weight_bound=10.0)
    rng = np.random.default_rng(3)
    inputs = {n: random_input(spec, rng) for n in spec.participants}
    if bad is not None:
        inputs[spec.participants[0]] = bad
    backend = _Backend(spec.participants[0])
    backend.setup(tmp_path, list(spec.participants))
    return release_round(None, backend, spec, lambda n, _: inputs[n], tmp_path, ListRecorder())


def test_aggregate_that_no_honest_inputs_give_is_refused(tmp_path: Path) -> None:
    ok = _release(tmp_path / "ok", None)
    assert not ok.outcome.aborted and ok.total is not None  # the check does not refuse honest sums
    bad = np.zeros(30)
    bad[:-1] = 5.0 / np.sqrt(29)  # L2 norm 5x the data bound ...
    bad[-1] = -40.0  # ... and a negative weight
    out = _release(tmp_path / "bad", bad)
    assert out.outcome.aborted and out.total is None
    assert "refusing to apply it" in out.outcome.reason


@pytest.mark.parametrize("field, total, match", [
    ("weight", [0.0, 0.0, 0.0, -1.0], "sum of weights -1 is outside"),
    ("weight", [0.0, 0.0, 0.0, 4.1], "sum of weights 4.1 is outside"),
    ("norm", [2.1, 0.0, 0.0, 1.0], "data norm 2.1 exceeds 2"),
    ("nan", [np.nan, 0.0, 0.0, 1.0], "data norm nan"),
])
def test_check_aggregate_bounds(field: str, total: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _spec().check_aggregate(np.array(total), 2)
    _spec().check_aggregate(np.array([2.0, 0.0, 0.0, 4.0]), 2)  # on the boundary: fine
