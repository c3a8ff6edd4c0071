"""The report's DP section: ε the server logged, the canary audit of the real mechanism, and
the example-level ε the public config claims.

- Client level: ``dp_client_epsilon`` per round from ``server/metrics.jsonl``; the one-shot
  canary audit (dp_canary.py) runs the run's own mechanism for as many rounds as were logged,
  and the same audit without noise as the control. A high flag when the audit's lower bound
  exceeds the logged ε; a warning when the log disagrees with the ε the public plan gives.
- Example level: DP-SGD runs inside each client and its ε stays in the client's own log. The
  server can only recompute what the public config claims (privacy/plan.py ExampleLevelPlan
  with the config's data.train_size as the record count), so it is reported as claimed, not
  observed, with every input of the formula.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from .dp_canary import DPAudit, UnauditedMechanism, audit_client_dp
from .epsilon import EpsilonEstimate
from .inventory import Flag
from .view import ServerView

log = logging.getLogger(__name__)

CONTROL_CANARIES = 60  # enough to show separation without noise


def _num(x: float | None) -> float | str | None:
    if x is None:
        return None
    return x if math.isfinite(x) else "inf"


def _estimate(e: EpsilonEstimate) -> dict:
    return {"epsilon": _num(e.epsilon), "epsilon_lower": _num(e.epsilon_lower), "auc": e.auc,
            "mean_observed": e.mean_observed, "mean_unobserved": e.mean_unobserved, "n": e.n_observed}


def _audit_dict(a: DPAudit) -> dict:
    return {"mechanism": a.mechanism, "backend": a.backend, "rounds": a.rounds, "clients": a.clients,
            "participants": a.participants, "threshold": a.threshold, "sample_rate": a.sample_rate,
            "noise_multiplier": a.noise_multiplier, "sigma": a.sigma, "dim": a.dim, "trials": a.trials,
            "statistics": {"sum": _estimate(a.sum), "message": _estimate(a.message)},
            "best_statistic": a.best_statistic, "expected_sum_epsilon": _num(a.expected_sum_epsilon),
            "observed": a.statistics[a.best_statistic]["observed"],
            "unobserved": a.statistics[a.best_statistic]["unobserved"]}


def _run_config(view: ServerView) -> tuple[Any | None, str]:
    from ..config import config_from_dict

    if not view.config:
        return None, "no RUN/config.json"
    try:
        return config_from_dict(view.config), ""
    except Exception as err:  # noqa: BLE001 - any invalid config: report it, audit the rest
        return None, f"RUN/config.json does not load as a run config ({type(err).__name__}: {err})"


def _logged_rows(view: ServerView) -> list[dict]:
    return [r for r in view.metrics if isinstance(r.get("dp_client_epsilon"), int | float)]


def example_level_claim(cfg: Any, rounds_done: int) -> dict | None:
    """ε of the config's example-level DP-SGD for a client that took part in every round."""
    from ..privacy.plan import ExampleLevelPlan

    ex = cfg.privacy.example_level
    if ex is None:
        return None
    records = cfg.data.train_size
    plan = ExampleLevelPlan.build(cfg, records, "(config)")
    assert plan is not None
    s = plan.settings
    return {
        "status": "claimed by the config, not observable by the server",
        "why": "DP-SGD noise is added inside each client; only the client's own log holds its ε",
        "epsilon_after_rounds_done": plan.budget.spent(rounds_done),
        "epsilon_after_all_rounds": plan.budget.spent(cfg.federation.rounds),
        "inputs": {"noise_multiplier": s.noise_multiplier, "max_grad_norm": s.max_grad_norm,
                   "sample_rate": s.sample_rate, "sample_rate_from": "privacy.example_level.sample_rate"
                   if ex.sample_rate is not None else f"grpo.oversample / data.train_size = "
                   f"{cfg.grpo.oversample} / {records}",
                   "grpo_steps_per_round": cfg.grpo.steps, "grpo_mu": cfg.grpo.mu, "rounds_done": rounds_done,
                   "federation_rounds": cfg.federation.rounds, "delta": ex.delta, "accountant": ex.accountant,
                   "target_epsilon": ex.epsilon, "records_assumed": records},
        "formula": "accountant(noise_multiplier / sqrt(mu), sample_rate, steps = grpo.steps x rounds) at delta",
        "own_data_clients": [c.name for c in cfg.clients if c.data],
    }


def dp_section(view: ServerView, seed: int = 0) -> tuple[dict, list[Flag]]:
    """The DP section of the report and its flags."""
    cfg, why = _run_config(view)
    rows = _logged_rows(view)
    per_round = [{"round": r.get("round"), "dp_client_epsilon": r["dp_client_epsilon"],
                  "aborted": r.get("aborted", False)} for r in rows]
    logged = float(rows[-1]["dp_client_epsilon"]) if rows else None
    section: dict = {"client_level": None, "epsilon_per_round": per_round, "logged_epsilon": logged,
                     "example_level": None, "control": None, "consistent": None}
    flags: list[Flag] = []
    if cfg is None:
        section["skipped"] = why
        if rows:
            flags.append(Flag("warn", "dp-not-audited", "config.json", f"ε is logged but {why}"))
        return section, flags
    rounds = len(rows) or max(1, len(view.rounds))
    section["example_level"] = example_level_claim(cfg, rounds)
    cl = cfg.privacy.client_level
    try:
        section["control"] = _audit_dict(audit_client_dp(cfg, rounds, noise=False, canaries=CONTROL_CANARIES,
                                                         seed=seed))
    except UnauditedMechanism as err:
        section["control"] = {"skipped": str(err)}
    if cl is None:
        if rows:
            flags.append(Flag("warn", "dp-log-without-plan", "server/metrics.jsonl",
                              "dp_client_epsilon is logged but the config has no privacy.client_level"))
        return section, flags
    try:
        audit = audit_client_dp(cfg, rounds, noise=True, seed=seed)
    except UnauditedMechanism as err:
        section["client_level"] = {"skipped": str(err)}
        flags.append(Flag("warn", "dp-not-audited", "privacy.client_level.mechanism", str(err)))
        return section, flags
    from ..privacy.plan import ClientLevelPlan

    plan = ClientLevelPlan.build(cfg)
    assert plan is not None
    planned = plan.budget.spent(rounds)
    section["planned_epsilon"] = planned
    if logged is None:
        flags.append(Flag("warn", "dp-epsilon-not-logged", "server/metrics.jsonl",
                          "privacy.client_level is configured but no dp_client_epsilon was logged"))
    elif not math.isclose(logged, planned, rel_tol=1e-6):
        flags.append(Flag("warn", "dp-epsilon-log-mismatch", "server/metrics.jsonl",
                          f"logged ε = {logged:.4g} after {rounds} round(s); the public plan gives {planned:.4g}"))
    section["client_level"] = _audit_dict(audit)
    reference = logged if logged is not None else planned
    best = audit.best
    section.update(empirical_epsilon=_num(best.epsilon), empirical_epsilon_lower=_num(best.epsilon_lower),
                   reference_epsilon=reference, statistic=audit.best_statistic)
    if best.epsilon_lower > reference * (1 + 1e-6):
        flags.append(Flag("high", "epsilon-under-reported", "server/metrics.jsonl",
                          f"the canary audit of the run's mechanism ({audit.best_statistic} statistic) gives "
                          f"ε >= {best.epsilon_lower:.3g} (95% lower bound), above the accountant's "
                          f"ε = {reference:.3g}"))
    section["consistent"] = not any(f.code == "epsilon-under-reported" for f in flags)
    return section, flags


def _g(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def dp_summary_lines(dp: dict) -> list[tuple[str, str]]:
    """Console lines for ``secure-fgrpo audit`` (label, text)."""
    out = []
    cl = dp.get("client_level")
    if cl and "skipped" not in cl:
        verdict = "consistent" if dp["consistent"] else "EXCEEDS the accountant"
        out.append(("DP canary audit (run's mechanism)",
                    f"empirical ε {_g(dp['empirical_epsilon'])} (≥ {_g(dp['empirical_epsilon_lower'])}) vs "
                    f"accountant ε {_g(dp['reference_epsilon'])}: {verdict}"))
    elif cl:
        out.append(("DP canary audit (run's mechanism)", f"not audited: {cl['skipped']}"))
    control = dp.get("control")
    if control and "skipped" not in control:
        st = control["statistics"][control["best_statistic"]]
        out.append(("DP canary audit without noise", f"empirical ε {_g(st['epsilon'])}, AUC {_g(st['auc'])}"))
    ex = dp.get("example_level")
    if ex:
        out.append(("example-level ε (claimed by the config)", _g(ex["epsilon_after_rounds_done"])))
    return out
