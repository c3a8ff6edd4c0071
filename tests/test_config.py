"""Config validation: unknown keys and bad values are refused, naming the key."""

from __future__ import annotations

import pytest
from conftest import small_run

from secure_fgrpo.cli import main
from secure_fgrpo.config import config_from_dict, load_config
from secure_fgrpo.configio import ConfigError

GOOD = """
seed = 1
[federation]
rounds = 2
[[clients]]
name = "a"
families = { vitals = 1.0 }
[[clients]]
name = "b"
families = { unit = 1.0 }
reward = { scale = 10.0 }
"""


def test_good_config_loads(tmp_path) -> None:
    p = tmp_path / "run.toml"
    p.write_text(GOOD)
    cfg = load_config(p)
    assert cfg.federation.rounds == 2 and cfg.clients[1].reward.scale == 10.0


@pytest.mark.parametrize("over, key", [
    ({"federation.roundz": 3}, "federation.roundz"),
    ({"grpo.loss.epsilon_hi": 0.3}, "grpo.loss.epsilon_hi"),
    ({"federation.rounds": "three"}, "federation.rounds"),
    ({"federation.strategy": "median"}, "federation.strategy"),
    ({"federation.fraction": 1.5}, "federation"),
    ({"secure_sum.backend": "quantum"}, "secure_sum.backend"),
    ({"model.lora.mode": "full"}, "model.lora.mode"),
])
def test_bad_values_name_the_key(over: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(small_run(**over))
    assert err.value.key.startswith(key)
    assert key.split(".")[-1] in str(err.value)


def test_unknown_family_and_duplicate_clients_refused() -> None:
    raw = small_run()
    raw["clients"][0]["families"] = {"oncology": 1.0}
    with pytest.raises(ConfigError, match="oncology"):
        config_from_dict(raw)
    raw = small_run()
    raw["clients"][1]["name"] = "a"
    with pytest.raises(ConfigError, match="duplicate"):
        config_from_dict(raw)


def test_cli_run_with_misspelled_key_exits_nonzero_naming_it(tmp_path, capsys) -> None:
    p = tmp_path / "typo.toml"
    p.write_text(GOOD.replace("rounds = 2", "rouns = 2"))
    code = main(["run", str(p), "--out", str(tmp_path / "run")])
    assert code != 0
    assert "federation.rouns" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()  # nothing started


def test_security_policy_is_validated_per_institution_and_reaches_the_backend() -> None:
    from secure_fgrpo.config import config_from_dict

    clients = [{"name": "a", "families": {"unit": 1.0}, "security": {"gamma": 0.3}},
               {"name": "b", "families": {"unit": 1.0}}]
    cfg = config_from_dict({"clients": clients, "secure_sum": {"backend": "masked"}, "security": {"delta": 0.05}})
    opts = cfg.backend_options
    assert opts["policy"] == {"delta": 0.05} and opts["client_policies"] == {"a": {"gamma": 0.3}}
    from secure_fgrpo.secure_sum import make_backend

    be = make_backend("masked", opts)
    assert be.client_policies["a"].gamma == 0.3 and be.client_policies["a"].delta == 0.05
    with pytest.raises(Exception, match=r"clients.a.security: unknown key"):
        config_from_dict({"clients": [dict(clients[0], security={"gama": 1}), clients[1]],
                          "secure_sum": {"backend": "masked"}})
    with pytest.raises(Exception, match="masked' only"):
        config_from_dict({"clients": clients, "secure_sum": {"backend": "plaintext"}})



@pytest.mark.parametrize("over, key", [
    ({"federation.fraction": 1.5}, "federation.fraction"),  # was: 'federation'
    ({"federation.rounds": 0}, "federation.rounds"),
    ({"server.kind": "adagrad"}, "server.kind"),  # was: 'server', and the message said server.optimizer
    ({"model.lora.r": 0}, "model.lora.r"),  # was: 'model.lora', and the message said lora.r
    ({"grpo.steps": 0}, "grpo.steps"),
    ({"data.train_size": 0}, "data.train_size"),
    ({"model.rollout": "vllm"}, "model.rollout"),
])
def test_a_section_refusal_names_the_exact_key(over: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(small_run(**over))
    assert err.value.key == key
    assert str(err.value).count("\n") == 0  # one line


@pytest.mark.parametrize("backend, options, key", [
    ("masked", {"signed": "yes"}, "secure_sum.options.signed"),
    ("masked", {"modulus_bits": 48}, "secure_sum.options.modulus_bits"),
    ("masked", {"prg": "rc4"}, "secure_sum.options.prg"),
    ("ckks", {"reveal": "everyone"}, "secure_sum.options.reveal"),
    ("ckks", {"decryptors": 0}, "secure_sum.options.decryptors"),
    ("masked", {"colour": 1}, "secure_sum.options: unknown option"),
])
def test_backend_option_refusals_name_the_config_key(backend: str, options: dict, key: str) -> None:
    """The backends name the key a user writes, [secure_sum.options], never 'secure_sum.signed'."""
    from secure_fgrpo.secure_sum import make_backend

    with pytest.raises(ValueError) as err:
        make_backend(backend, options)
    assert str(err.value).startswith(key)


@pytest.mark.parametrize("option, home", [("tau", "gain.tau"), ("gain_clip", "gain.clip"),
                                          ("policy", "[security]")])
def test_an_option_another_table_sets_is_refused(option: str, home: str) -> None:
    """secure_sum.options.tau used to be accepted and then win over gain.tau (two homes for τ)."""
    raw = small_run(**{"secure_sum.backend": "ckks" if option != "policy" else "masked",
                       "federation.strategy": "fgrpo",
                       "secure_sum.options": {option: 1.0} if option != "policy" else {"policy": {}}})
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert err.value.key == f"secure_sum.options.{option}" and home in str(err.value)


def test_relative_data_and_eval_data_are_read_from_the_config_folder(tmp_path, monkeypatch) -> None:
    """Both file keys resolve against the config file's folder (a copied folder keeps working);
    a missing one is refused naming its key."""
    (tmp_path / "d").mkdir()
    for name in ("train.jsonl", "held.jsonl"):
        (tmp_path / "d" / name).write_text('{"prompt": "1 g to mg=", "answer": "1000", "kind": "unit"}\n')
    body = ('[[clients]]\nname = "a"\ndata = "d/train.jsonl"\neval_data = "d/held.jsonl"\n'
            '[[clients]]\nname = "b"\nfamilies = { vitals = 1.0 }\n')
    (tmp_path / "run.toml").write_text(body)
    monkeypatch.chdir("/")
    cfg = load_config(tmp_path / "run.toml")
    assert cfg.clients[0].eval_data == str(tmp_path / "d" / "held.jsonl")
    (tmp_path / "run.toml").write_text(body.replace("d/held.jsonl", "d/missing.jsonl"))
    with pytest.raises(ConfigError, match=r"clients\.a\.eval_data"):
        load_config(tmp_path / "run.toml")
