"""The one-shot canary audit runs the run's REAL client-level mechanism (ClientNoise.privatize
from the public plan, the real secure sum) and has teeth:

- with the configured noise, the empirical ε sits below the accountant's ε (masked, CKKS);
- the same audit without noise gives separation (ε huge, AUC 1);
- distributed noise with the plaintext backend lets the server read each vector with only its
  share of the noise: the per-message statistic exceeds the accountant and the audit says so;
- a mechanism without an audit path is refused by name (the hook skellam will need).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from secure_fgrpo.audit.dp_canary import UnauditedMechanism, audit_client_dp, release_round
from secure_fgrpo.audit.dp_section import example_level_claim
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.privacy.config import ClientLevelConfig
from secure_fgrpo.privacy.plan import ClientLevelPlan

from conftest import small_run

ROUNDS = 2


def _cfg(backend: str, mechanism: str = "distributed", **over: object):  # noqa: ANN202
    return config_from_dict(small_run(**{"secure_sum.backend": backend, **over, "privacy.client_level": {
        "epsilon": 8.0, "delta": 1e-5, "mechanism": mechanism}}))


def _accountant(cfg) -> float:  # noqa: ANN001
    plan = ClientLevelPlan.build(cfg)
    assert plan is not None
    return plan.budget.spent(ROUNDS)


@pytest.mark.parametrize("backend", ["masked", "ckks"])
def test_real_mechanism_sits_below_the_accountant(backend: str) -> None:
    cfg = _cfg(backend)
    eps = _accountant(cfg)
    assert eps == pytest.approx(8.0, rel=1e-3)  # the plan calibrated z for ε = 8 over the run's rounds
    a = audit_client_dp(cfg, ROUNDS, seed=1)
    assert a.mechanism == "distributed" and a.threshold == 2 and a.participants == 3
    assert a.sum.epsilon_lower <= eps and a.best.epsilon_lower <= eps
    # Not vacuous: the canaries have full sensitivity, so the sums give about the exact ε of
    # the statistic (distributed: 3 shares of σ²/2 each, so σ·sqrt(3/2) in the sum).
    assert a.expected_sum_epsilon is not None and 4.0 < a.expected_sum_epsilon < eps
    assert a.sum.epsilon == pytest.approx(a.expected_sum_epsilon, rel=0.35)
    assert a.sum.auc > 0.8
    # The server's per-message estimate (masked words / ciphertext coefficients) is chance.
    assert a.message.epsilon_lower < 1.0 and abs(a.message.auc - 0.5) < 0.1


@pytest.mark.parametrize("backend", ["masked", "plaintext"])
def test_the_same_audit_without_noise_has_teeth(backend: str) -> None:
    a = audit_client_dp(_cfg(backend), ROUNDS, noise=False, canaries=30, seed=2)
    assert a.mechanism == "none" and a.noise_multiplier == 0 and a.expected_sum_epsilon == math.inf
    assert a.sum.auc == 1.0 and a.sum.epsilon_lower > 50
    if backend == "plaintext":
        assert a.message.auc == 1.0 and a.message.epsilon_lower > 50
    else:
        assert abs(a.message.auc - 0.5) < 0.25  # masked messages still reveal nothing on their own


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


def test_a_mechanism_without_an_audit_path_is_refused_by_name(tmp_path) -> None:  # noqa: ANN001
    cfg = _cfg("masked")
    plan = ClientLevelPlan(ClientLevelConfig(epsilon=8.0, mechanism="skellam"), cfg)
    from secure_fgrpo.secure_sum import make_backend
    from secure_fgrpo.secure_sum.base import SumSpec

    spec = SumSpec(round=1, dim=5, data_bound=1.0, weight_bound=1.0, participants=("a", "b", "c"), threshold=2)
    with pytest.raises(UnauditedMechanism, match="skellam.*release_round"):
        release_round(plan, make_backend("masked", {}), spec, {}, tmp_path, None)


def test_example_level_claim_is_recomputed_from_public_parameters() -> None:
    cfg = config_from_dict(small_run(**{"privacy.example_level": {"epsilon": 4.0, "delta": 1e-5}}))
    claim = example_level_claim(cfg, rounds_done=1)
    assert claim is not None and claim["status"].startswith("claimed by the config, not observable")
    inp = claim["inputs"]
    q = cfg.grpo.oversample / cfg.data.train_size
    assert inp["sample_rate"] == pytest.approx(q) and inp["records_assumed"] == cfg.data.train_size
    assert inp["grpo_steps_per_round"] == cfg.grpo.steps and inp["federation_rounds"] == cfg.federation.rounds
    # Independently: Opacus' RDP accountant on the same public inputs.
    z = inp["noise_multiplier"] / math.sqrt(cfg.grpo.mu)
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


def test_a_skellam_run_is_reported_as_not_audited_rather_than_crashing() -> None:
    cfg = _cfg("masked", "skellam")
    with pytest.raises(UnauditedMechanism, match="'skellam' has no audit path"):
        audit_client_dp(cfg, ROUNDS)
    control = audit_client_dp(cfg, 1, noise=False, canaries=9)  # the control still runs
    assert control.sum.auc == 1.0
