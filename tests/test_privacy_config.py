"""The [privacy] section: every impossible setting is refused with the key it is about; the
CLI's --dp shorthand; the plan's calibration from a target ε."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import small_run

from secure_fgrpo.cli import _dp_overrides
from secure_fgrpo.config import config_from_dict, load_config
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.demo import DP_SGD_EXAMPLE_LEVEL, DP_SGD_SETTINGS, demo_config
from secure_fgrpo.privacy.accountant import epsilon
from secure_fgrpo.privacy.plan import ClientLevelPlan, ExampleLevelPlan

EX, CL = "privacy.example_level", "privacy.client_level"


@pytest.mark.parametrize("over,key", [
    ({EX: {"epsilon": 0.0}}, f"{EX}.epsilon"),
    ({EX: {"epsilon": -1.0}}, f"{EX}.epsilon"),
    ({CL: {"epsilon": 0.0}}, f"{CL}.epsilon"),
    ({EX: {}}, f"{EX}.epsilon"),  # neither a target nor a noise multiplier
    ({EX: {"noise_multiplier": 0.0}}, f"{EX}.noise_multiplier"),
    ({EX: {"epsilon": 8.0, "delta": 1 / 40}}, f"{EX}.delta"),  # small_run: 40 records per client
    ({EX: {"epsilon": 8.0, "delta": 0.0}}, f"{EX}.delta"),
    ({CL: {"epsilon": 8.0, "delta": 0.34}}, f"{CL}.delta"),  # 3 clients: δ must be < 1/3
    ({EX: {"epsilon": 8.0, "max_grad_norm": 0.0}}, f"{EX}.max_grad_norm"),
    ({EX: {"epsilon": 8.0, "max_grad_norm": -1.0}}, f"{EX}.max_grad_norm"),
    ({EX: {"epsilon": 8.0, "reward_noise_ratio": 0.0}}, f"{EX}.reward_noise_ratio"),
    ({EX: {"epsilon": 8.0, "reward_noise_ratio": float("inf")}}, f"{EX}.reward_noise_ratio"),
    ({CL: {"epsilon": 8.0, "weight_clip": 0.0}}, f"{CL}.weight_clip"),
    ({EX: {"epsilon": 8.0, "sample_rate": 1.5}}, f"{EX}.sample_rate"),
    ({EX: {"epsilon": 8.0, "accountant": "moments"}}, f"{EX}.accountant"),
    ({EX: {"epsilon": 8.0, "bogus": 1}}, f"{EX}.bogus"),
    ({CL: {"epsilon": 8.0, "mechanism": "skellam"}, "secure_sum.backend": "ckks"}, f"{CL}.mechanism"),
    ({CL: {"epsilon": 8.0, "mechanism": "skellam"}}, f"{CL}.mechanism"),  # plaintext cannot either
    ({CL: {"epsilon": 8.0, "mechanism": "skellam", "accountant": "prv"}, "secure_sum.backend": "masked"},
     f"{CL}.accountant"),  # masked carries skellam (test_privacy_skellam_masked.py), but not with PRV
    ({CL: {"epsilon": 8.0}, "secure_sum.backend": "ckks", "secure_sum.options": {"weights": "server"}}, CL),
    ({EX: {"epsilon": 8.0}, "grpo.scale_rewards": "batch"}, "grpo.scale_rewards"),
])
def test_refused_settings_name_their_key(over: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(small_run(**over))
    assert err.value.key == key
    assert f"'{key}'" in str(err.value)


def test_delta_is_checked_against_a_clients_own_record_count() -> None:
    cfg = config_from_dict(small_run(**{EX: {"epsilon": 8.0, "delta": 0.02}}))  # < 1/40: accepted
    with pytest.raises(ConfigError, match="client 'h' has 50 training records") as err:
        ExampleLevelPlan(cfg.privacy.example_level, cfg, pool_size=50, client="h")  # own data: 50 rows
    assert err.value.key == f"{EX}.delta"


def test_toml_section_loads(tmp_path: Path) -> None:
    import tomllib

    toml = tmp_path / "run.toml"
    body = _toml(small_run())
    toml.write_text(body + "\n[privacy.example_level]\nepsilon = 4.0\nmax_grad_norm = 0.5\n"
                    "\n[privacy.client_level]\nnoise_multiplier = 1.2\nmechanism = \"local\"\n")
    tomllib.loads(toml.read_text())
    cfg = load_config(toml)
    assert cfg.privacy.example_level.epsilon == 4.0 and cfg.privacy.example_level.max_grad_norm == 0.5
    assert cfg.privacy.client_level.noise_multiplier == 1.2 and cfg.privacy.client_level.epsilon is None


def test_plans_calibrate_to_the_target_over_the_whole_run() -> None:
    cfg = config_from_dict(small_run(**{EX: {"epsilon": 3.0}, CL: {"epsilon": 5.0, "mechanism": "local"},
                                        "federation.rounds": 3, "grpo.mu": 2}))
    ex = ExampleLevelPlan(cfg.privacy.example_level, cfg, pool_size=40, client="a")
    assert ex.settings.sample_rate == pytest.approx(6 / 40)  # grpo.oversample / pool
    # mu = 2 noisy updates per sample, plus FGRPO's two reward moments at k times the noise,
    # account as one Gaussian with z / sqrt(mu + 2/k²)
    steps, k = 3 * cfg.grpo.steps, cfg.privacy.example_level.reward_noise_ratio
    assert cfg.federation.strategy == "fgrpo"
    assert ex.settings.reward_noise == pytest.approx(k * ex.settings.noise_multiplier)
    spent = epsilon([(ex.settings.noise_multiplier / (2 + 2 / k**2) ** 0.5, 6 / 40, steps)], 1e-5)
    assert 2.95 < spent <= 3.0 and ex.budget.spent(3) == pytest.approx(spent)
    cl = ClientLevelPlan(cfg.privacy.client_level, cfg)
    assert cl.sample_rate == 1.0 and 4.95 < cl.budget.spent(3) <= 5.0
    assert cl.sensitivity == pytest.approx(cl.weight_max * (cfg.federation.delta_clip ** 2 + 1) ** 0.5)


def test_dp_shorthand() -> None:
    # example-level DP-SGD brings the demo's DP-tuned settings along
    assert _dp_overrides(["example:8"], "masked") == {EX: {"epsilon": 8.0, **DP_SGD_EXAMPLE_LEVEL},
                                                      **DP_SGD_SETTINGS}
    assert _dp_overrides(["client:2"], "ckks") == {CL: {"epsilon": 2.0, "mechanism": "distributed"}}
    assert _dp_overrides(["client:2"], "masked") == {CL: {"epsilon": 2.0, "mechanism": "skellam"}}
    gpu = _dp_overrides(["example:8"], "masked", gpu=True)[EX]  # a GPU affords the larger Poisson batch
    assert gpu == {"epsilon": 8.0, **DP_SGD_EXAMPLE_LEVEL, "sample_rate": 0.25}
    tuned = demo_config(**_dp_overrides(["example:8"], "masked"))  # the tuned demo is a valid config
    assert (tuned.model.lora.r, tuned.privacy.example_level.sample_rate) == (1, DP_SGD_EXAMPLE_LEVEL["sample_rate"])
    assert _dp_overrides(["client:2"], "plaintext") == {CL: {"epsilon": 2.0, "mechanism": "local"}}
    for bad in ("example", "patient:8", "example:eight", "example:8:local"):
        with pytest.raises(ValueError, match="--dp"):
            _dp_overrides([bad], "plaintext")


def _toml(raw: dict, prefix: str = "") -> str:
    """Just enough TOML writing for small_run's shape (tables, arrays of tables, scalars)."""
    scalars, tables, arrays = [], [], []
    for k, v in raw.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            arrays.append((k, v))
        else:
            scalars.append(f"{k} = {_value(v)}")
    out = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for k, v in tables:
        out.append(_toml(v, f"{prefix}.{k}" if prefix else k))
    for k, items in arrays:
        for item in items:
            out.append(f"[[{prefix + '.' if prefix else ''}{k}]]")
            out += [f"{ik} = {_value(iv)}" for ik, iv in item.items() if not isinstance(iv, dict)]
            for ik, iv in item.items():
                if isinstance(iv, dict):
                    out.append(f"{ik} = {{ " + ", ".join(f'"{a}" = {_value(b)}' for a, b in iv.items()) + " }")
    return "\n".join(out)


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


@pytest.mark.parametrize("strategy,releases", [("fgrpo", True), ("fedavg", False), ("uniform", False)])
def test_weights_from_rewards_are_released_inside_the_example_level_mechanism(
        strategy: str, releases: bool, caplog: pytest.LogCaptureFixture) -> None:
    """FGRPO's e_i comes from noisy reward moments released with each DP-SGD step, so nothing is
    left outside the guarantee to warn about; FedAvg (public n_i) and 'uniform' release none and keep z."""
    with caplog.at_level(logging.WARNING, logger="secure_fgrpo.privacy.config"):
        cfg = config_from_dict(small_run(**{EX: {"epsilon": 8.0}, "federation.strategy": strategy}))
    assert caplog.text == ""
    plan = ExampleLevelPlan(cfg.privacy.example_level, cfg, pool_size=40, client="b")
    uniform = ExampleLevelPlan(cfg.privacy.example_level, config_from_dict(small_run(
        **{EX: {"epsilon": 8.0}, "federation.strategy": "uniform"})), pool_size=40, client="b")
    assert plan.releases_rewards is releases and (plan.settings.reward_noise is not None) is releases
    assert plan.settings.reward_bound == 10.0  # client b scores 0..10
    factor = (1 + 2 / 5.0**2) ** 0.5 if releases else 1.0
    assert plan.settings.noise_multiplier == pytest.approx(uniform.settings.noise_multiplier * factor)
    assert plan.budget.spent(2) == pytest.approx(uniform.budget.spent(2))  # same ε, same mechanism strength
