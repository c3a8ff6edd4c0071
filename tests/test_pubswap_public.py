"""PubSwap's public prompt set (federation/public_set.py) and its config (config.py
``[pubswap]``): the same set for every party, disjoint from every client's training prompts and
from every held-out prompt, on the prompt strings; and each refusal names its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_run
from toml_out import dumps

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.federation.datasets import build_data
from secure_fgrpo.federation.public_set import is_exchange_round, public_set
from secure_fgrpo.tasks import in_held_out_space


def _cfg(**over: object):
    return config_from_dict(small_run(**{"pubswap.enabled": True, **over}))


def test_public_set_is_disjoint_from_training_and_held_out_prompts() -> None:
    cfg = _cfg(**{"data.train_size": 400})
    public = public_set(cfg)
    prompts = public.prompts
    assert len(prompts) == len(public.problems) == 4 * cfg.pubswap.prompts
    assert {p.family for p in public.problems} == {"vitals", "choice", "unit"}  # the config's families
    assert public == public_set(_cfg(**{"data.train_size": 400}))  # a pure function of the config
    assert not any(in_held_out_space(p) for p in prompts)
    fed = build_data(cfg)
    for c in fed.clients.values():
        assert not prompts & {p.prompt for p in c.train}, c.name
        assert not prompts & {p.prompt for p in c.eval}, c.name
    assert not prompts & {p.prompt for p in fed.global_eval}
    # teeth: without the exclusion the same pools do hold public prompts (400 draws from each
    # family's few hundred train-space prompts)
    plain = build_data(config_from_dict(small_run(**{"data.train_size": 400})))
    assert any(prompts & {p.prompt for p in c.train} for c in plain.clients.values())
    # and the other clients' pools are the same draws, only the public prompts removed
    for name, c in fed.clients.items():
        assert [p for p in plain.clients[name].train if p.prompt not in prompts] == c.train


def test_exchange_prompts_are_public_and_seeded() -> None:
    cfg = _cfg(**{"pubswap.every": 2})
    public = public_set(cfg)
    idx = public.exchange(cfg, 1)
    assert len(idx) == cfg.pubswap.prompts == len(set(idx)) and idx == public.exchange(cfg, 1)
    assert idx != public.exchange(cfg, 3)
    assert [is_exchange_round(cfg, r) for r in (1, 2, 3, 4)] == [True, False, True, False]


@pytest.mark.parametrize(("over", "key"), [
    ({"pubswap.every": 0}, "pubswap.every"),
    ({"pubswap.prompts": 0}, "pubswap.prompts"),
    ({"pubswap.responses": 0}, "pubswap.responses"),
    ({"pubswap.steps": 0}, "pubswap.steps"),
    ({"pubswap.blob_bytes": 8}, "pubswap.blob_bytes"),
    ({"pubswap.colour": 1}, "pubswap.colour"),
    ({"privacy.client_level": {"noise_multiplier": 1.0, "mechanism": "local"}}, "pubswap.enabled"),
])
def test_config_refusals_name_the_key(over: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(**over)
    assert err.value.key == key and "\n" not in str(err.value)


def test_client_level_dp_refused_example_level_allowed(caplog) -> None:
    with pytest.raises(ConfigError, match="client_level: the local model is not private"):
        _cfg(**{"privacy.client_level": {"noise_multiplier": 1.0, "mechanism": "local"}})
    import logging

    with caplog.at_level(logging.INFO, logger="secure_fgrpo.config"):
        cfg = _cfg(**{"privacy.example_level": {"noise_multiplier": 1.0}})
    assert cfg.pubswap.enabled and any("post-processing" in r.getMessage() for r in caplog.records)
    assert not config_from_dict(small_run()).pubswap.enabled  # off by default


def test_flower_refuses_pubswap_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("flwr")
    from secure_fgrpo.flower.config import ServerConfig
    from secure_fgrpo.flower.coordinator import Coordinator

    path = tmp_path / "fed.toml"
    path.write_text(dumps(small_run(**{"pubswap.enabled": True, "secure_sum.backend": "masked"})))
    cfg = ServerConfig.from_run_config({"config": str(path), "roster": str(tmp_path / "roster.json"),
                                        "out-dir": str(tmp_path / "out")})
    with pytest.raises(ValueError, match=r"^pubswap\.enabled: PubSwap runs in the in-process") as err:
        Coordinator(None, cfg)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)
