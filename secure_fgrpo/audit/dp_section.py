"""The report's DP section: ε the server logged, the canary audit of the real mechanism, and
the example-level ε the public config claims.

- Client level: ``dp_client_epsilon`` per round from ``server/metrics.jsonl``; the one-shot
  canary audit (dp_canary.py) runs the run's own mechanism for as many rounds as were logged,
  and the same audit without noise as the control. A high flag when the audit's lower bound
  exceeds the logged ε; a warning when the log disagrees with the ε the public plan gives.
- Skellam: the plan depends on the length of ``[e·Δ, e]`` (the rounding bound Δ2 grows with
  it). The run's length is the word count of the masked inputs the server archived; the audit
  runs at ``min(AUDIT_DIM, run's length)`` and still compares against the LOGGED ε. Why that is
  sound: a canary's sum statistic is fixed by its signal e_max·C and the sum's noise
  σ = sqrt(2μ)/γ (float units; rounding adds unbiased noise of std ≤ 1/(2γ) per coordinate and
  client). Both plans are calibrated to the same ε over the same rounds, and a shorter vector
  inflates Δ2 less, so the audited σ is at most the run's: the audited instance leaks at least as
  much per canary as the run's mechanism (conservative: no under-reporting hides behind the
  smaller dim). Both σ, μ, γ and ε are reported; a warning when the audited σ exceeds the logged
  one (the audit would then be optimistic).
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
AUDIT_DIM = 2049  # canary vector length (data + weight): enough to keep the canaries' cross-talk small


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
    except Exception as err:
        return None, f"RUN/config.json does not load as a run config ({type(err).__name__}: {err})"


def run_dim(view: ServerView) -> int | None:
    """Length of the run's ``[e·Δ, e]``: the word count the server's archived masked inputs
    share (the most common one: a rejected, malformed message does not decide it; Skellam runs
    are masked). None when no masked payload was archived or none could be read."""
    from collections import Counter

    from .checks import masked_words

    _, options = view.backend_options()
    word_bytes = int(options.get("modulus_bits", 32)) // 8
    counts: Counter[int] = Counter()
    for entry in view.entries:
        if entry.kind != "masked":
            continue
        try:
            payload = view.payload(entry)
            if payload is not None:
                counts[memoryview(masked_words(payload)).nbytes // word_bytes] += 1
        except ValueError as err:  # a bad payload is the payload checks' finding, not this one's
            log.info("round %d masked input from %s unreadable (%s)", entry.round, entry.sender, type(err).__name__)
    return counts.most_common(1)[0][0] if counts else None


def _skellam_calibration(audit: DPAudit, rows: list[dict], dim: int | None, planned: float) -> tuple[dict, list[Flag]]:
    """The audited Skellam instance next to the run's logged one (module docstring: why the
    comparison against the logged ε is conservative while the audited σ is at most the run's)."""
    last = rows[-1] if rows else {}
    own = audit.plan_row
    info: dict[str, Any] = {"audit_dim": audit.dim, "run_dim": dim,
            "audited": {"sigma": own.get("dp_client_sigma"), "mu": own.get("dp_client_skellam_mu"),
                        "scale": own.get("dp_client_scale"), "epsilon": audit.accountant_epsilon},
            "run": {"sigma": last.get("dp_client_sigma"), "mu": last.get("dp_client_skellam_mu"),
                    "scale": last.get("dp_client_scale"), "epsilon": last.get("dp_client_epsilon"),
                    "planned_epsilon": planned},
            "compared": "the canary audit's ε lower bound against the run's logged ε",
            "why": "a canary's sum statistic depends on e_max·C and the sum's σ only; the audited σ is at most the "
                   "run's, so the audited instance leaks at least as much per canary (conservative)"}
    flags: list[Flag] = []
    audited, logged = info["audited"]["sigma"], info["run"]["sigma"]
    if isinstance(audited, float) and isinstance(logged, int | float) and logged > 0:
        info["sigma_ratio"] = audited / logged
        if audited > logged * (1 + 1e-6):
            flags.append(Flag("warn", "dp-audit-noisier-than-run", "server/metrics.jsonl",
                              f"the Skellam instance audited at dim {audit.dim} carries σ = {audited:.6g}, more than "
                              f"the run's logged σ = {logged:.6g}: its empirical ε may under-state the run's"))
    else:
        flags.append(Flag("warn", "dp-audit-sigma-unknown", "server/metrics.jsonl",
                          "no dp_client_sigma logged: the Skellam audit's calibration cannot be compared to the run's"))
    return info, flags


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
                   "target_epsilon": ex.epsilon, "records_assumed": records,
                   "reward_noise_ratio": ex.reward_noise_ratio if plan.releases_rewards else None},
        "formula": "accountant(noise_multiplier / sqrt(mu + 2/k^2), sample_rate, steps = grpo.steps x rounds) "
                   "at delta; k = reward_noise_ratio when the weights release reward moments, "
                   "else the 2/k^2 term is 0",
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
    dim = run_dim(view)
    skellam = cl.mechanism == "skellam"
    audit_dim = min(AUDIT_DIM, dim) if skellam and dim is not None else AUDIT_DIM
    try:
        audit = audit_client_dp(cfg, rounds, noise=True, dim=audit_dim, seed=seed)
    except UnauditedMechanism as err:
        section["client_level"] = {"skipped": str(err)}
        flags.append(Flag("warn", "dp-not-audited", "privacy.client_level.mechanism", str(err)))
        return section, flags
    from ..privacy.plan import ClientLevelPlan

    plan = ClientLevelPlan.build(cfg, dim or audit_dim)  # Skellam: at the run's own length when known
    assert plan is not None
    planned = plan.budget.spent(rounds)
    section["planned_epsilon"] = planned
    if skellam:
        section["skellam"], more = _skellam_calibration(audit, rows, dim, planned)
        flags.extend(more)
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
    sk = dp.get("skellam")
    if sk:
        ratio = sk.get("sigma_ratio")
        out.append(("Skellam calibration (audit vs run)",
                    f"dim {sk['audit_dim']} vs {sk['run_dim'] or 'unknown'}: σ {_g(sk['audited']['sigma'])} vs "
                    f"{_g(sk['run']['sigma'])}" + (f" (ratio {ratio:.6f})" if ratio is not None else "")))
    control = dp.get("control")
    if control and "skipped" not in control:
        st = control["statistics"][control["best_statistic"]]
        out.append(("DP canary audit without noise", f"empirical ε {_g(st['epsilon'])}, AUC {_g(st['auc'])}"))
    ex = dp.get("example_level")
    if ex:
        out.append(("example-level ε (claimed by the config)", _g(ex["epsilon_after_rounds_done"])))
    return out
