"""The one-shot canary audit runs the run's REAL client-level mechanism (the federation's own
release_round: ClientNoise.privatize, or Skellam's integer noise inside the masked backend, and
the real secure sum) and has teeth:

- with the configured noise, the empirical ε sits below the accountant's ε (masked and CKKS
  with distributed Gaussian shares, masked with Skellam shares);
- the same audit without noise gives separation (ε huge, AUC 1);
- distributed noise with the plaintext backend lets the server read each vector with only its
  share of the noise: the per-message statistic exceeds the accountant and the audit says so;
- a secure sum that does not carry [e·Δ, e] (server-side weights) is refused by name.

The DP noise comes from SecureRandom (secret: no test can seed it), so statistical bounds are
derived from the statistic's sampling error at Z standard errors, not picked: the AUC of two
samples of sizes n1, n0 has standard error sqrt((n1 + n0 + 1) / (12·n1·n0)) under the null
(Mann-Whitney) and the Hanley-McNeil (1982) standard error around its expected value otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import small_run
from scipy.stats import norm

from secure_fgrpo.audit.dp_canary import UnauditedMechanism, audit_client_dp
from secure_fgrpo.audit.dp_section import example_level_claim
from secure_fgrpo.audit.epsilon import gdp_epsilon
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.privacy.plan import ClientLevelPlan

ROUNDS = 2
DIM = 2049  # audit_client_dp's default canary length
RUN_DIM = 24577  # small_run's adapter + weight (what a Skellam run is calibrated at)
Z = 5.0  # standard errors: a false failure has probability below 1e-6 per bound (normal tails)


def _cfg(backend: str, mechanism: str = "distributed", **over: object):
    return config_from_dict(small_run(**{"secure_sum.backend": backend, **over, "privacy.client_level": {
        "epsilon": 8.0, "delta": 1e-5, "mechanism": mechanism}}))


def _accountant(cfg, dim: int = DIM) -> float:
    plan = ClientLevelPlan.build(cfg, dim)
    assert plan is not None
    return plan.budget.spent(ROUNDS)


def _null_auc_se(n1: int, n0: int) -> float:
    """Standard error of the Mann-Whitney AUC when both samples come from one distribution."""
    return math.sqrt((n1 + n0 + 1) / (12.0 * n1 * n0))


def _auc_se(auc: float, n1: int, n0: int) -> float:
    """Hanley-McNeil standard error of an AUC around its value ``auc``."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    return math.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc ** 2) + (n0 - 1) * (q2 - auc ** 2)) / (n1 * n0))


def _expected_mu(cfg, a) -> float:
    """The sum statistic's Gaussian-DP μ from the public plan alone: per round the canary adds
    e_max·C against the sum's noise σ·sqrt(k/t) (k shares of σ²/t), over R rounds."""
    plan = ClientLevelPlan.build(cfg, a.dim)
    noise = plan.sigma * math.sqrt(a.participants / a.threshold)
    return math.sqrt(a.rounds) * plan.weight_max * plan.delta_clip / noise


def _mu_se(mu: float, n1: int, n0: int) -> float:
    """Standard error of the estimator's μ = mean difference / pooled std (delta method)."""
    return math.sqrt(1 / n1 + 1 / n0 + mu * mu / (2 * (n1 + n0 - 2)))


@pytest.mark.parametrize(("backend", "mechanism"), [("masked", "distributed"), ("ckks", "distributed"),
                                                    ("masked", "skellam")])
def test_real_mechanism_sits_below_the_accountant(backend: str, mechanism: str) -> None:
    cfg = _cfg(backend, mechanism)
    eps = _accountant(cfg)
    assert eps == pytest.approx(8.0, rel=1e-3)  # the plan calibrated the noise for ε = 8 over the run's rounds
    a = audit_client_dp(cfg, ROUNDS, seed=1)
    assert a.mechanism == mechanism and a.threshold == 2 and a.participants == 3
    assert a.accountant_epsilon == pytest.approx(eps, rel=1e-12)
    assert a.sum.epsilon_lower <= eps and a.best.epsilon_lower <= eps
    # Not vacuous: the canaries have full sensitivity, so the sums give about the exact ε of
    # the statistic (3 shares of σ²/2 each, Gaussian or Skellam, so σ·sqrt(3/2) in the sum).
    mu, n1, n0 = _expected_mu(cfg, a), a.sum.n_observed, a.sum.n_unobserved
    assert a.expected_sum_epsilon == pytest.approx(gdp_epsilon(mu, a.sum.delta), rel=1e-9)
    assert a.expected_sum_epsilon is not None and 4.0 < a.expected_sum_epsilon < eps
    # the point estimate within Z standard errors of μ (here ε from 3.1 to 8.4 around 5.6)
    margin = Z * _mu_se(mu, n1, n0)
    assert gdp_epsilon(mu - margin, a.sum.delta) < a.sum.epsilon < gdp_epsilon(mu + margin, a.sum.delta)
    # The sums separate the canaries as the plan predicts: observed − null ~ N(μ, 2), so the
    # AUC is Φ(μ/√2) ≈ 0.81 here (a fixed bar of 0.8 failed at 0.796, one standard error below).
    expected_auc = float(norm.cdf(mu / math.sqrt(2)))
    assert a.sum.auc > expected_auc - Z * _auc_se(expected_auc, n1, n0)
    assert a.sum.auc > 0.5 + Z * _null_auc_se(n1, n0)  # and beyond chance
    # The server's per-message estimate (masked words / ciphertext coefficients) is chance.
    assert a.message.epsilon_lower < 1.0 and abs(a.message.auc - 0.5) < Z * _null_auc_se(n1, n0)


def test_skellam_is_audited_at_a_calibration_no_noisier_than_the_run() -> None:
    """Skellam's plan depends on the vector length (Δ2 grows with rounding more coordinates);
    the audit's canaries are shorter than the run's vector. The sum statistic depends on σ only,
    and at the shorter length σ is at most the run's: the audited instance is at least as leaky
    as the run's, so comparing its ε bound with the run's logged ε is conservative."""
    cfg = _cfg("masked", "skellam")
    short, run = ClientLevelPlan.build(cfg, DIM), ClientLevelPlan.build(cfg, RUN_DIM)
    assert short.sigma <= run.sigma and short.sigma == pytest.approx(run.sigma, rel=1e-9)
    assert short.budget.spent(ROUNDS) == pytest.approx(run.budget.spent(ROUNDS), rel=1e-9)
    # Where rounding dominates (a coarse fixed scale), the gap is real and goes the same way.
    coarse = _cfg("masked", "skellam", **{"secure_sum.options": {"scale": 1.0}})
    c_short, c_run = ClientLevelPlan.build(coarse, DIM), ClientLevelPlan.build(coarse, RUN_DIM)
    assert c_short.sigma < 0.9 * c_run.sigma


@pytest.mark.parametrize("backend", ["masked", "plaintext"])
def test_the_same_audit_without_noise_has_teeth(backend: str) -> None:
    a = audit_client_dp(_cfg(backend), ROUNDS, noise=False, canaries=90, seed=2)
    assert a.mechanism == "none" and a.noise_multiplier == 0 and a.expected_sum_epsilon == math.inf
    assert a.sum.auc == 1.0 and a.sum.epsilon_lower > 50
    if backend == "plaintext":
        assert a.message.auc == 1.0 and a.message.epsilon_lower > 50
    else:
        # masked messages still reveal nothing on their own (chance, within Z null standard errors)
        assert abs(a.message.auc - 0.5) < Z * _null_auc_se(a.message.n_observed, a.message.n_unobserved)


def test_distributed_noise_in_plaintext_exceeds_the_accountant_per_message() -> None:
    """The config warns that the guarantee covers the released model only; the audit measures
    it: each vector carries σ/sqrt(t) of noise, not σ, and the server reads each vector."""
    cfg = _cfg("plaintext")
    eps = _accountant(cfg)
    a = audit_client_dp(cfg, ROUNDS, seed=3)
    assert a.best_statistic == "message" and a.message.epsilon_lower > eps
    assert a.sum.epsilon_lower <= eps  # the released sums are still covered
    local = audit_client_dp(_cfg("plaintext", "local"), ROUNDS, seed=3)
    assert local.message.epsilon_lower <= eps  # local noise covers each message


def test_a_sum_without_the_weight_coordinate_is_refused_by_name() -> None:
    cfg = config_from_dict(small_run(**{"secure_sum.backend": "ckks", "secure_sum.options": {"weights": "server"}}))
    with pytest.raises(UnauditedMechanism, match=r"secure_sum.options.weights = 'server'"):
        audit_client_dp(cfg, 1, noise=False)


def test_example_level_claim_is_recomputed_from_public_parameters() -> None:
    cfg = config_from_dict(small_run(**{"privacy.example_level": {"epsilon": 4.0, "delta": 1e-5}}))
    claim = example_level_claim(cfg, rounds_done=1)
    assert claim is not None and claim["status"].startswith("claimed by the config, not observable")
    inp = claim["inputs"]
    q = cfg.grpo.oversample / cfg.data.train_size
    assert inp["sample_rate"] == pytest.approx(q) and inp["records_assumed"] == cfg.data.train_size
    assert inp["grpo_steps_per_round"] == cfg.grpo.steps and inp["federation_rounds"] == cfg.federation.rounds
    # Independently: Opacus' RDP accountant on the same public inputs (FGRPO's reward moments ride
    # on each step at k times the noise: one Gaussian of multiplier z / sqrt(mu + 2/k²)).
    assert cfg.federation.strategy == "fgrpo" and inp["reward_noise_ratio"] == 5.0
    z = inp["noise_multiplier"] / math.sqrt(cfg.grpo.mu + 2 / inp["reward_noise_ratio"] ** 2)
    for rounds, key in ((1, "epsilon_after_rounds_done"), (cfg.federation.rounds, "epsilon_after_all_rounds")):
        from opacus.accountants import RDPAccountant

        acc = RDPAccountant()
        acc.history = [(z, q, cfg.grpo.steps * rounds)]
        assert claim[key] == pytest.approx(acc.get_epsilon(delta=1e-5), rel=1e-9)
    assert claim["epsilon_after_rounds_done"] < claim["epsilon_after_all_rounds"] <= 4.0 * (1 + 1e-6)
    assert example_level_claim(_cfg("masked"), 1) is None


def test_audit_statistics_are_reproducible_under_a_seed() -> None:
    """Canary directions come from the seed; only the DP noise (a CSPRNG) differs."""
    cfg = _cfg("plaintext")
    a = audit_client_dp(cfg, 1, noise=False, canaries=9, seed=4)
    b = audit_client_dp(cfg, 1, noise=False, canaries=9, seed=4)
    assert np.allclose(a.statistics["sum"]["observed"], b.statistics["sum"]["observed"])
    assert a.trials == 3 and len(a.statistics["sum"]["unobserved"]) == 9


def test_the_control_without_noise_keeps_its_teeth_on_a_skellam_config() -> None:
    control = audit_client_dp(_cfg("masked", "skellam"), 1, noise=False, canaries=9)
    assert control.mechanism == "none" and control.accountant_epsilon is None and control.plan_row == {}
    assert control.sum.auc == 1.0 and control.sum.epsilon_lower > 50


def test_a_poisson_round_with_fewer_than_two_canaries_releases_nothing_and_the_audit_goes_on(tmp_path) -> None:
    """Poisson sampling may draw 0 or 1 of 3 canaries; the federation then releases nothing for
    the round (it still counts for DP). The audit runs that mechanism: such a round adds 0 to
    every canary's sum statistic, and a round that did sum adds ~1 for each summed canary
    (no noise: the control), so the statistic counts exactly the rounds that released a sum
    with that canary in it. Before, the masked backend refused the 1-party round."""
    from secure_fgrpo.federation.server import Server

    cfg = _cfg("masked", **{"federation.sampling": "poisson", "federation.fraction": 0.5})
    a = audit_client_dp(cfg, ROUNDS, noise=False, canaries=18, seed=5)
    names = [c.name for c in cfg.clients]
    server = Server(tmp_path, cfg, names)  # the same public draw the audit's server made
    rounds = [server.participants(r) for r in range(1, a.trials * ROUNDS + 1)]
    assert any(len(p) < 2 for p in rounds) and any(len(p) >= 2 for p in rounds)  # both kinds occur
    assert all(len(p) < 2 for p in rounds[:6])  # 3 trials in which no round sums: no transcript at all
    assert a.sample_rate == 0.5
    expected = [sum(1 for r in range(t * ROUNDS, (t + 1) * ROUNDS) if len(rounds[r]) >= 2 and name in rounds[r])
                for t in range(a.trials) for name in names]
    # cross-talk of 2048-dimensional random unit directions: |u·v| ~ 1/45 per pair and round
    assert np.allclose(a.statistics["sum"]["observed"], expected, atol=0.25)
