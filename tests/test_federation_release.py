"""federation/release.py: the one function that runs a round's noisy secure sum, for the
federation and for the DP audit alike. Each test checks a step of the release that a copy
could get wrong: the threshold abort under noise, Skellam's noise inside the masked backend,
the offsets and the weight floor of finish_sum, clients that disagree on a decrypted sum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.audit import dp_canary
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation import release, runner
from secure_fgrpo.federation.release import agreed_client_result, release_round
from secure_fgrpo.privacy.client_dp import ClientNoise, SkellamNoise
from secure_fgrpo.privacy.plan import ClientLevelPlan
from secure_fgrpo.secure_sum import DropSchedule, make_backend
from secure_fgrpo.secure_sum.base import SumClient, SumSpec

NAMES = ("a", "b", "c")
DIM = 1001


def _plan(mechanism: str, backend: str = "plaintext", **cl: object):
    cfg = config_from_dict(small_run(**{"secure_sum.backend": backend, "privacy.client_level": {
        "epsilon": 8.0, "delta": 1e-5, "mechanism": mechanism, **cl}}))
    return ClientLevelPlan.build(cfg, DIM), cfg


def _spec(cfg, round_: int = 1) -> SumSpec:
    e = cfg.weight_bound
    return SumSpec(round=round_, dim=DIM, data_bound=e * cfg.federation.delta_clip, weight_bound=e,
                   participants=NAMES, threshold=2)


class _Recorder:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def record(self, msg) -> None:
        self.kinds.append(msg.kind)


def test_the_federation_and_the_audit_call_the_same_function() -> None:
    assert runner.release_round is release.release_round is dp_canary.release_round


def test_fewer_than_t_contributions_under_noise_abort_and_release_nothing(tmp_path: Path) -> None:
    plan, cfg = _plan("distributed")
    seen: list[tuple[str, object]] = []

    def prepare(name: str, noise: ClientNoise | SkellamNoise | None) -> np.ndarray:
        seen.append((name, noise))
        v = np.zeros(DIM)
        v[-1] = 1.0
        return noise.privatize(v) if noise is not None else v

    drops = lambda stages: DropSchedule({stages[0]: {"b", "c"}})  # noqa: E731 - one contributor left
    out = release_round(plan, make_backend("plaintext", {}), _spec(cfg), prepare, tmp_path, _Recorder(), drops)
    assert [n for n, _ in seen] == list(NAMES) and all(isinstance(x, ClientNoise) for _, x in seen)
    assert out.outcome.aborted and out.total is None
    assert out.outcome.reason == "1 contributions, fewer than the threshold 2"
    assert out.spec.data_bound > _spec(cfg).data_bound  # the widened public box was broadcast
    # The same round without noise has no such floor: one contribution is a sum.
    plain = release_round(None, make_backend("plaintext", {}), _spec(cfg, 2), prepare, tmp_path, _Recorder(), drops)
    assert not plain.outcome.aborted and plain.total is not None and plain.total[-1] == 1.0


def test_finish_sum_removes_the_offsets_and_floors_the_weight(tmp_path: Path) -> None:
    plan, cfg = _plan("distributed")
    prepare = lambda name, noise: noise.privatize(np.zeros(DIM))  # noqa: E731 - every weight is 0
    out = release_round(plan, make_backend("plaintext", {}), _spec(cfg), prepare, tmp_path, _Recorder())
    assert out.total is not None and len(out.outcome.contributors) == 3
    # Offsets removed: the data part is noise around 0 with the sum's std σ·sqrt(3/2) (3 shares of σ²/2).
    assert abs(out.total[:-1].mean()) < 6 * plan.sigma * np.sqrt(1.5 / (DIM - 1))
    # 9 standard errors of a std over 1000 draws
    assert out.total[:-1].std() == pytest.approx(plan.sigma * np.sqrt(1.5), rel=0.2)
    assert out.total[-1] >= plan.sigma  # the noised sum of zero weights, floored at σ


def test_skellam_noise_is_added_inside_the_masked_backend(tmp_path: Path) -> None:
    plan, cfg = _plan("skellam", "masked")
    names = list(NAMES)
    backend = make_backend("masked", {})
    backend.setup(tmp_path, names)
    got: list[object] = []

    def prepare(name: str, noise: ClientNoise | SkellamNoise | None) -> np.ndarray:
        got.append(noise)
        return noise.privatize(np.zeros(DIM))  # Skellam's privatize only clips: zeros stay zeros

    rec = _Recorder()
    out = release_round(plan, backend, _spec(cfg), prepare, tmp_path, rec)
    assert all(isinstance(x, SkellamNoise) for x in got) and "masked" in rec.kinds
    assert out.total is not None and not out.outcome.aborted
    # Zeros in, noise of the sum out: 3 shares of Sk(μ/2), std σ·sqrt(3/2) in float units.
    assert out.total[:-1].std() == pytest.approx(plan.sigma * np.sqrt(1.5), rel=0.2)
    assert out.spec.data_bound == pytest.approx(out.noise.word_bound / out.noise.scale)


class _Fixed(SumClient):
    def __init__(self, name: str, value: np.ndarray) -> None:
        self.name, self.value = name, value

    def set_input(self, vector: np.ndarray) -> None:  # pragma: no cover - not driven here
        pass

    def respond(self, stage, inbound):  # pragma: no cover
        return None

    def result(self) -> np.ndarray | None:
        return self.value


def test_clients_that_decrypt_different_sums_stop_the_round() -> None:
    same = {n: _Fixed(n, np.ones(3)) for n in NAMES}
    assert np.array_equal(agreed_client_result(same, NAMES), np.ones(3))
    split = {**same, "c": _Fixed("c", np.array([1.0, 1.0, 2.0]))}
    with pytest.raises(RuntimeError, match="different aggregates"):
        agreed_client_result(split, NAMES)
    assert agreed_client_result({n: _Fixed(n, None) for n in NAMES}, NAMES) is None
