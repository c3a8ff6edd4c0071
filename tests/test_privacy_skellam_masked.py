"""Client-level Skellam noise inside the masked backend: the integer noise rides in the
fixed-point words, so what the server decodes carries exactly Sk(≥ μ) per coordinate when at
least t clients contribute; the plan refuses parameters that could wrap, by key; and a tiny
federation runs with it, writing ε every round."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run
from scipy import stats

from secure_fgrpo.cli import _dp_overrides
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.privacy.client_dp import SkellamNoise
from secure_fgrpo.privacy.plan import ClientLevelPlan, SkellamPlan
from secure_fgrpo.privacy.skellam import rounded_l2_bound, tail_bound
from secure_fgrpo.secure_sum import DropSchedule, SumSpec, make_backend, run_secure_sum
from secure_fgrpo.secure_sum.masked import client_state_dir, server_state_dir
from secure_fgrpo.secure_sum.masked.context import Params, RoundContext
from secure_fgrpo.secure_sum.transcript import TranscriptRecorder

NAMES = ("a", "b", "c", "d")
CL = "privacy.client_level"


def _noise(share: float, scale: float = 1000.0, dim: int = 12_001) -> SkellamNoise:
    """Hand-set public parameters: e_max = 1, C = 1 (sensitivity sqrt(2)), Sk(share) per client."""
    l2 = rounded_l2_bound(scale * np.sqrt(2.0), dim)
    return SkellamNoise(scale=scale, share=share, l2_bound=l2, word_bound=int(np.ceil(l2)) + tail_bound(share),
                        weight_max=1.0, delta_clip=1.0)


def _sum(tmp_path: Path, noise: SkellamNoise, inputs: dict[str, np.ndarray], t: int = 3,
         drops: DropSchedule | None = None, bits: int = 32) -> tuple[np.ndarray | None, int]:
    dim = len(next(iter(inputs.values())))
    spec = noise.widen(SumSpec(round=1, dim=dim, data_bound=1.0, weight_bound=1.0,
                               participants=tuple(sorted(inputs)), threshold=t))
    backend = make_backend("masked", {"signed": False, "modulus_bits": bits})
    clients = {}
    for name, vector in inputs.items():
        clients[name] = backend.client(name, spec, client_state_dir(tmp_path, name), noise=noise)
        clients[name].set_input(vector)
    server = backend.server(spec, server_state_dir(tmp_path), noise=noise)
    out = run_secure_sum(server, clients, TranscriptRecorder(tmp_path / "t.jsonl", None), drops)
    return out.total, len(out.contributors)


def _zeros(dim: int) -> dict[str, np.ndarray]:
    return {n: np.zeros(dim) for n in NAMES}


def test_decoded_noise_is_the_sum_of_the_contributors_shares(tmp_path: Path) -> None:
    """Zero inputs round to zero, so γ·decoded is the noise itself: Sk(4·share) with all four
    contributions, Sk(3·share) = Sk(t·share) when one drops before sending its input."""
    share, dim = 30.0, 12_001
    noise = _noise(share)
    total, m = _sum(tmp_path / "all", noise, _zeros(dim))
    late = DropSchedule({"masked_input": {"d"}})
    fewer, m2 = _sum(tmp_path / "two", noise, _zeros(dim), drops=late)
    assert (m, m2) == (4, 3)
    for got, contributions in ((total, 4), (fewer, 3)):
        k = np.rint(got * noise.scale).astype(np.int64)
        assert np.allclose(k / noise.scale, got, rtol=0, atol=1e-9)  # whole quanta, data and weight alike
        mu = contributions * share
        assert k.var() == pytest.approx(2 * mu, rel=0.07)  # 5 standard errors
        obs_lo, obs_hi = k.min(), k.max()
        ks = np.arange(obs_lo, obs_hi + 1)
        exp = stats.skellam.pmf(ks, mu, mu) * k.size
        obs = np.bincount(k - obs_lo, minlength=ks.size)
        keep = exp >= 5
        # Fresh secret keys (as in production): the p-value is uniform, so this fails 1 run in 10^6.
        assert stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue > 1e-6


def test_fewer_than_t_contributions_abort_the_round(tmp_path: Path) -> None:
    total, m = _sum(tmp_path, _noise(30.0), _zeros(50), drops=DropSchedule({"masked_input": {"c", "d"}}))
    assert total is None and m == 0


@pytest.mark.parametrize("bits", [32, 64])
def test_without_noise_the_integer_path_sums_exactly_up_to_rounding(tmp_path: Path, bits: int) -> None:
    """share = 0: the decoded sum is the float sum to within one quantum per contributor, on
    the data part and on the weight (both at the one scale γ), and negative words decode."""
    gen = np.random.default_rng(1)
    inputs = {}
    for n in NAMES:
        v = gen.standard_normal(65) * 0.1
        v[-1] = gen.uniform(0, 1)
        inputs[n] = v
    noise = _noise(0.0, scale=5000.0)
    total, m = _sum(tmp_path, noise, inputs, bits=bits)
    exact = sum(inputs.values())
    assert m == 4 and np.abs(total - exact).max() <= 4 / noise.scale
    assert (total[:-1] < 0).any()


def test_noise_parameters_are_bound_into_the_round_digest() -> None:
    spec = _noise(30.0).widen(SumSpec(round=1, dim=10, data_bound=1.0, weight_bound=1.0,
                                      participants=NAMES, threshold=3))
    digests = {RoundContext.build(spec, Params(), None, n).digest for n in (_noise(30.0), _noise(31.0))}
    assert len(digests) == 2  # a server showing clients different noise is caught by the signatures
    with pytest.raises(ValueError, match=r"secure_sum.options.scale"):
        RoundContext.build(spec, Params(scale=123.0), None, _noise(30.0))


# --- the plan ---------------------------------------------------------------------------------

def _cfg(**over: object):
    return config_from_dict(small_run(**{"secure_sum.backend": "masked", **over}))


def test_plan_calibrates_mu_to_the_target_and_noise_multiplier_means_sigma_over_l2(tmp_path: Path) -> None:
    plan = ClientLevelPlan.build(_cfg(**{CL: {"epsilon": 4.0, "mechanism": "skellam"}}), dim=3001)
    assert isinstance(plan, SkellamPlan) and (plan.k, plan.t) == (3, 2)
    assert 4.0 * (1 - 1e-6) <= plan.budget.spent(2) <= 4.0  # small_run: 2 rounds
    cal = plan.calibration
    assert cal.share == pytest.approx(cal.mu / 2)
    assert plan.sigma == pytest.approx(np.sqrt(2 * cal.mu) / cal.scale)
    fixed = ClientLevelPlan.build(_cfg(**{CL: {"noise_multiplier": 1.5, "mechanism": "skellam"}}), dim=3001)
    c = fixed.calibration
    assert 2 * c.mu == pytest.approx((1.5 * c.l2) ** 2)
    spec = SumSpec(round=1, dim=3001, data_bound=1.0, weight_bound=1.0, participants=("a", "b", "c"), threshold=2)
    assert plan.noise(spec).share == cal.share
    # Through the masked backend, exactly t = 2 contributions of zeros decode to noise of std σ.
    total, m = _sum(Path(tmp_path), plan.noise(spec), {n: np.zeros(3001) for n in "abc"}, t=2,
                    drops=DropSchedule({"masked_input": {"c"}}))
    assert m == 2 and total.std() == pytest.approx(plan.sigma, rel=0.075)  # 5.8 standard errors
    assert abs(total.mean()) < plan.sigma / 10
    with pytest.raises(RuntimeError, match="calibrated for"):
        plan.noise(SumSpec(round=1, dim=3001, data_bound=1.0, weight_bound=1.0, participants=("a", "b", "c"),
                           threshold=3))


def test_cli_spelling_reaches_an_accepted_config() -> None:
    over = _dp_overrides(["client:8:skellam"], "masked")
    assert over == {CL: {"epsilon": 8.0, "mechanism": "skellam"}}
    assert _cfg(**over).privacy.client_level.mechanism == "skellam"


def test_plan_refuses_parameters_that_would_wrap_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        ClientLevelPlan.build(_cfg(**{CL: {"epsilon": 4.0, "mechanism": "skellam"},
                                      "secure_sum.options": {"scale": 1e12}}), dim=3001)
    assert err.value.key == "secure_sum.options.scale" and "modulus_bits = 64" in str(err.value)
    with pytest.raises(ConfigError) as err:
        ClientLevelPlan.build(_cfg(**{CL: {"epsilon": 4.0, "mechanism": "skellam"}}), dim=10 ** 17)
    assert err.value.key == "secure_sum.options.modulus_bits"


# --- a federation ------------------------------------------------------------------------------

def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_federation_with_skellam_noise_writes_epsilon_every_round(quick_model_dir, tmp_path: Path) -> None:
    raw = small_run(**{"secure_sum.backend": "masked", "federation.strategy": "uniform",
                       CL: {"epsilon": 8.0, "mechanism": "skellam"}})
    fed = Federation(config_from_dict(raw), tmp_path / "run")
    summary = fed.run()
    assert summary.stopped == ""
    rows = _rows(tmp_path / "run" / "server" / "metrics.jsonl")
    eps = [r["dp_client_epsilon"] for r in rows]
    assert [r["round"] for r in rows] == [1, 2] and not any(r["aborted"] for r in rows)
    assert 0 < eps[0] < eps[1] <= 8.0 and eps[1] == pytest.approx(8.0, rel=1e-6)
    assert all(r["dp_client_sigma"] == pytest.approx(fed.client_dp.sigma) for r in rows)
    assert all(r["sum_of_weights"] >= r["dp_client_sigma"] for r in rows)  # floored at σ
    assert all(r["contributors"] == 3 for r in rows)


def test_tiny_skellam_noise_lands_on_the_plaintext_round(quick_model_dir, tmp_path: Path) -> None:
    """z = 1e-9: the masked round with integer noise must decode to the plaintext round's
    adapter (up to rounding and that noise), so clipping, the single scale and the signed
    weight all line up with the noiseless path."""
    base = {"federation.rounds": 1}
    plain = Federation(config_from_dict(small_run(**base)), tmp_path / "plain")
    plain.run()
    raw = small_run(**base, **{"secure_sum.backend": "masked",
                               CL: {"noise_multiplier": 1e-9, "mechanism": "skellam"}})
    fed = Federation(config_from_dict(raw), tmp_path / "sk")
    fed.run()
    row = _rows(tmp_path / "sk" / "server" / "metrics.jsonl")[-1]
    assert row["contributors"] == 3 and not row["aborted"]
    assert row["sum_of_weights"] == pytest.approx(plain.global_metrics.rows()[-1]["sum_of_weights"], rel=1e-4)
    ref = plain.global_model.state.vector
    assert np.allclose(fed.global_model.state.vector, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_the_run_stops_before_the_skellam_budget_is_exceeded(quick_model_dir, tmp_path: Path) -> None:
    over = {"secure_sum.backend": "masked", "federation.strategy": "uniform"}
    z_only = {CL: {"noise_multiplier": 2.0, "mechanism": "skellam"}}
    probe = Federation(config_from_dict(small_run(**over, **z_only)), tmp_path / "probe").client_dp
    limit = (probe.budget.spent(1) + probe.budget.spent(2)) / 2  # room for one round, not two
    raw = small_run(**over, **{CL: {"noise_multiplier": 2.0, "epsilon": limit, "mechanism": "skellam"}})
    summary = Federation(config_from_dict(raw), tmp_path / "run").run()
    assert "client-level budget" in summary.stopped
    (row,) = _rows(tmp_path / "run" / "server" / "metrics.jsonl")
    assert row["dp_client_epsilon"] == pytest.approx(probe.budget.spent(1))
