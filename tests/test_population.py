"""Many-client simulation: a generated population, per-round sampling (fixed or Poisson), client
objects and data built only when sampled, and the client-level plan using the sampling run."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import ConfigError, to_dict
from secure_fgrpo.data.population import (
    PopulationConfig,
    client_data,
    client_mix,
    client_size,
)
from secure_fgrpo.federation.population import LazyMap
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.federation.server import Server
from secure_fgrpo.privacy.accountant import epsilon
from secure_fgrpo.privacy.plan import ClientLevelPlan, SkellamPlan
from secure_fgrpo.tasks.heldout import in_held_out_space


def population_run(size: int, fraction: float, sampling: str = "fixed", **over: object) -> dict:
    raw = small_run(**{"federation.fraction": fraction, "federation.sampling": sampling, **over})
    del raw["clients"]
    raw["population"] = {"size": size}
    return raw


def test_a_population_stands_for_its_clients_and_survives_a_save_and_reload() -> None:
    cfg = config_from_dict(population_run(1000, 0.05))
    assert len(cfg.clients) == 1000 and cfg.clients[0].name == "site0000" and cfg.clients[-1].name == "site0999"
    assert config_from_dict(to_dict(cfg)) == cfg  # the run folder's saved config lists them: accepted
    raw = population_run(10, 0.5)
    raw["clients"] = [{"name": "a", "families": {"vitals": 1.0}}, {"name": "b", "families": {"vitals": 1.0}}]
    with pytest.raises(ConfigError, match=r"\[\[clients\]\] or set \[population\], not both"):
        config_from_dict(raw)
    with pytest.raises(ConfigError, match=r"population\.size must be >= 2"):
        config_from_dict(population_run(1, 0.5))
    with pytest.raises(ConfigError, match=r"federation\.sampling"):
        config_from_dict(population_run(10, 0.5, "bernoulli"))


def test_population_data_is_a_function_of_seed_and_name_with_a_long_tail_and_skewed_mixes() -> None:
    pop = PopulationConfig(size=1000, alpha=0.1, median_size=16, size_sigma=1.0, min_size=2)
    a, again = client_data(pop, "site0007", 3, 128, 4), client_data(pop, "site0007", 3, 128, 4)
    assert [p.prompt for p in a.train] == [p.prompt for p in again.train] and a.mix == again.mix
    assert [p.prompt for p in client_data(pop, "site0007", 4, 128, 4).train] != [p.prompt for p in a.train]
    assert not any(in_held_out_space(p.prompt) for p in a.train) and all(in_held_out_space(p.prompt) for p in a.eval)
    sizes = [client_size(pop, n, 3, 128) for n in pop.names()]
    assert min(sizes) >= 2 and max(sizes) <= 128
    assert statistics.median(sizes) == pytest.approx(16, abs=2)
    assert max(sizes) >= 8 * statistics.median(sizes) and min(sizes) <= statistics.median(sizes) / 4  # a long tail
    top = [max(client_mix(pop, n, 3).values()) for n in pop.names()[:200]]
    assert statistics.fmean(top) > 0.7  # α = 0.1: most clients concentrate on one family
    flat = PopulationConfig(size=1000, alpha=100.0)
    assert statistics.fmean(max(client_mix(flat, n, 3).values()) for n in flat.names()[:200]) < 0.4


def test_poisson_sampling_draws_each_client_at_rate_q_and_fixed_draws_exactly_k(tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(200)]
    poisson = Server(tmp_path / "p", config_from_dict(population_run(200, 0.1, "poisson")), names)
    counts = [len(poisson.participants(r)) for r in range(1, 101)]
    assert statistics.fmean(counts) == pytest.approx(20, abs=1.5) and len(set(counts)) > 5  # the count varies
    seen = Counter(c for r in range(1, 101) for c in poisson.participants(r))
    assert statistics.fmean(seen.values()) == pytest.approx(10, abs=1)  # ~ q · 100 rounds each
    assert poisson.participants(7) == poisson.participants(7)  # seeded by (seed, round): resume draws the same
    assert poisson.most_rounds_sampled(100) == max(seen.values())
    poisson.exclude({"c3": "proved misbehaving"})
    assert not any("c3" in poisson.participants(r) for r in range(1, 50))
    fixed = Server(tmp_path / "f", config_from_dict(population_run(200, 0.1)), [f"c{i}" for i in range(200)])
    assert {len(fixed.participants(r)) for r in range(1, 30)} == {20}


def test_the_lazy_map_builds_on_demand_keeps_a_bounded_number_and_rebuilds_the_same() -> None:
    built: list[str] = []

    def build(name: str) -> str:
        built.append(name)
        return name.upper()

    m: LazyMap[str] = LazyMap([f"n{i}" for i in range(1000)], build, keep=3)
    assert len(m) == 1000 and "n999" in m and "zz" not in m and not built
    assert [m[f"n{i}"] for i in range(5)] == ["N0", "N1", "N2", "N3", "N4"]
    assert len(m.cached()) == 3 and m.built == 5
    assert m["n4"] == "N4" and m.built == 5  # held: not rebuilt
    assert m["n0"] == "N0" and m.built == 6  # dropped earlier: rebuilt, identical
    with pytest.raises(KeyError):
        m["zz"]


def test_client_level_plan_accounts_the_poisson_rate_and_reports_the_roster_known_epsilon() -> None:
    over = {"federation.rounds": 3, "secure_sum.backend": "masked", "federation.strategy": "uniform",
            "privacy.client_level": {"noise_multiplier": 1.0, "epsilon": 50.0, "mechanism": "distributed"}}
    cfg = config_from_dict(population_run(1000, 0.03, "poisson", **over))
    plan = ClientLevelPlan.build(cfg, 11)
    assert isinstance(plan, ClientLevelPlan) and plan.sample_rate == 0.03
    row = plan.row(3, most_sampled=1)
    assert row["dp_client_epsilon"] == pytest.approx(epsilon([(1.0, 0.03, 3)], 1e-5))
    # Amplification has teeth: the same noise at q = 1 over 3 rounds costs far more ...
    assert epsilon([(1.0, 1.0, 3)], 1e-5) > 3 * row["dp_client_epsilon"]
    # ... and against the server, which sees who was sampled, a client sampled once pays one full release.
    assert row["dp_client_epsilon_roster_known"] == pytest.approx(epsilon([(1.0, 1.0, 1)], 1e-5))
    server = Server(Path("/nonexistent"), cfg, [c.name for c in cfg.clients])
    for r in (1, 2):  # under Poisson sampling the count varies and each round's noise follows its threshold
        spec = server.sum_spec(r, server.participants(r), 10)
        assert plan.noise(spec).std > 0
    fixed = ClientLevelPlan.build(config_from_dict(population_run(1000, 0.03, "fixed", **over)), 11)
    assert isinstance(fixed, ClientLevelPlan)
    with pytest.raises(RuntimeError, match="calibrated for 30"):
        fixed.noise(server.sum_spec(1, [c.name for c in cfg.clients[:31]], 10))


def test_skellam_under_poisson_sampling_calibrates_each_count_and_claims_no_amplification() -> None:
    over = {"federation.rounds": 2, "secure_sum.backend": "masked", "federation.strategy": "uniform",
            "secure_sum.options": {"modulus_bits": 64},
            "privacy.client_level": {"epsilon": 8.0, "mechanism": "skellam"}}
    cfg = config_from_dict(population_run(200, 0.1, "poisson", **over))
    plan = ClientLevelPlan.build(cfg, 41)
    assert isinstance(plan, SkellamPlan)
    server = Server(Path("/nonexistent"), cfg, [c.name for c in cfg.clients])
    names = [c.name for c in cfg.clients]
    small, large = plan.noise(server.sum_spec(1, names[:12], 40)), plan.noise(server.sum_spec(1, names[:30], 40))
    # each of fewer survivors carries a larger share of the noise (in float units: the scale may differ)
    assert small.share / small.scale**2 > large.share / large.scale**2
    assert plan.row(2, most_sampled=1)["dp_client_epsilon"] == pytest.approx(8.0, rel=0.01)  # no amplification


def test_a_population_federation_builds_only_the_sampled_clients(quick_model_dir, tmp_path: Path) -> None:
    raw = population_run(30, 0.1, "fixed", **{"federation.rounds": 2, "grpo.steps": 1, "data.eval_size": 2,
                                     "secure_sum.backend": "masked"})
    fed = Federation(config_from_dict(raw), tmp_path / "run")
    fed.run()
    sampled = {n for r in (1, 2) for n in fed.server.participants(r)}
    assert len(sampled) <= 6 and fed.parties.built == len(sampled)  # 30 clients, 3 a round: never all 30
    with_state = {p.parent.name for p in (tmp_path / "run" / "clients").glob("*/metrics.jsonl")}
    assert with_state == sampled
    rows = [json.loads(x) for x in (tmp_path / "run" / "server" / "metrics.jsonl").read_text().splitlines()]
    assert [r["contributors"] for r in rows] == [3, 3] and not any(r["aborted"] for r in rows)


def test_a_poisson_round_that_draws_fewer_than_two_clients_is_skipped_but_still_accounted(quick_model_dir,
                                                                                        tmp_path: Path) -> None:
    raw = population_run(10, 0.02, "poisson", **{
        "federation.rounds": 2, "secure_sum.backend": "masked", "federation.strategy": "uniform",
        "privacy.client_level": {"noise_multiplier": 1.0, "epsilon": 100.0, "mechanism": "distributed"}})
    fed = Federation(config_from_dict(raw), tmp_path / "run")
    assert all(len(fed.server.participants(r)) < 2 for r in (1, 2))  # q = 0.02 of 10: this seed draws none
    fed.run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "server" / "metrics.jsonl").read_text().splitlines()]
    assert [r["aborted"] for r in rows] == [True, True] and "nothing to sum" in rows[0]["reason"]
    assert rows[0]["dp_client_epsilon"] < rows[1]["dp_client_epsilon"]  # the round counts all the same
    assert fed.parties.built == 0


def test_the_prv_accountant_takes_the_same_poisson_rate() -> None:
    over = {"federation.rounds": 3, "secure_sum.backend": "masked", "federation.strategy": "uniform",
            "privacy.client_level": {"epsilon": 8.0, "mechanism": "distributed", "accountant": "prv"}}
    plan = ClientLevelPlan.build(config_from_dict(population_run(1000, 0.03, "poisson", **over)), 11)
    assert isinstance(plan, ClientLevelPlan) and plan.sample_rate == 0.03
    assert plan.row(3)["dp_client_epsilon"] == pytest.approx(epsilon([(plan.noise_multiplier, 0.03, 3)], 1e-5, "prv"))
    assert plan.row(3)["dp_client_epsilon"] <= 8.0 * (1 + 1e-6)
    rdp = ClientLevelPlan.build(config_from_dict(population_run(1000, 0.03, "poisson", **{
        **over, "privacy.client_level": {"epsilon": 8.0, "mechanism": "distributed"}})), 11)
    assert isinstance(rdp, ClientLevelPlan) and plan.noise_multiplier < rdp.noise_multiplier  # PRV is tighter
