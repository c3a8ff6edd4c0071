"""Convergence benchmark: FGRPO vs FedAvg vs centralized GRPO vs local-only training, on the
demo federation (four institutions, different task mixes and reward scales: non-IID), over
several seeds. Same rollout budget for every method: rounds x clients x grpo.steps GRPO steps,
each rolling out ``grpo.oversample`` prompts x ``grpo.group_size`` completions.

    .venv/bin/python benchmarks/convergence.py [--rounds 6] [--seeds 0,1,2] [--methods fgrpo,fedavg] [--out DIR]
        [--quick] [--variants] [--stem NAME]

Besides the four baselines, named FGRPO methods (``LEVERS``) close the gap to centralized at the
same rollouts: a server learning rate, FedAvgM, FedAdam, more local steps per round on fewer
prompts per step, PubSwap. ``--methods`` runs a subset and merges its rows into the existing
``<stem>.json`` (keyed by method, seed and client), so one row can be added without rerunning
the rest; ``--replot`` re-renders.

``--variants`` compares GRPO variants inside FGRPO instead (grpo/advantages.py, grpo/loss.py):
the demo's DAPO loss, NGRPO advantages, and DAPO vs GSPO at mu = 2 (at mu = 1 every importance
ratio is 1, so GSPO's sequence ratio and any clip do nothing); it writes convergence_variants.*.

writes convergence.{json,md,png} under --out (default benchmarks/results; --quick writes to a
temp folder unless --out is given). Every (method, seed[, client]) unit runs single-threaded in
its own worker process, so wall times are comparable single-core seconds. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from secure_fgrpo.config import RunConfig
from secure_fgrpo.configio import to_dict
from secure_fgrpo.demo import DEMO, demo_config
from secure_fgrpo.federation.datasets import build_data
from secure_fgrpo.federation.runner import Federation, eval_seed
from secure_fgrpo.grpo.evaluate import pass_at_1
from secure_fgrpo.grpo.trainer import train_round
from secure_fgrpo.model.load import load_base, resolve_model_path
from secure_fgrpo.model.lora import attach_lora
from secure_fgrpo.report import client_rows
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.seeding import derive_seed
from secure_fgrpo.tasks import RewardSpec, score
from secure_fgrpo.tasks.base import Problem

log = logging.getLogger("convergence")
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
METHODS = ("fgrpo", "fedavg", "centralized", "local")
OLD_SET = " prompts (the old set, which overlapped the warm start)"
LABELS = {"fgrpo": "FGRPO (federated)", "fedavg": "FedAvg (federated)",
          "centralized": "centralized GRPO (pooled data)", "local": "local-only (mean over clients)",
          "local-best": "local-only (best client)"}
# FGRPO with another GRPO variant: the overrides on top of the run's settings.
VARIANTS: dict[str, dict[str, Any]] = {
    "fgrpo+ngrpo": {"grpo.advantage": "ngrpo"},
    "fgrpo+mu2": {"grpo.mu": 2},
    "fgrpo+gspo-mu2": {"grpo.mu": 2, "grpo.loss.loss_type": "gspo",
                       "grpo.loss.epsilon_low": 3e-4, "grpo.loss.epsilon_high": 4e-4},
}
LABELS.update({"fgrpo+ngrpo": "FGRPO, NGRPO advantages", "fgrpo+mu2": "FGRPO, DAPO loss, mu = 2",
               "fgrpo+gspo-mu2": "FGRPO, GSPO loss (eps 3e-4/4e-4), mu = 2"})
# The levers that close the gap to centralized (issue 16 item 3): FGRPO with these overrides.
# Local steps: same rounds and rollouts, so more, smaller steps (prompts_per_step and oversample
# divided by what steps is multiplied by): the federation's sequential update count grows.
LEVERS: dict[str, dict[str, Any]] = {
    "fgrpo-server-sgd-lr2": {"server.kind": "sgd", "server.lr": 2.0},
    "fgrpo-server-sgd-lr3": {"server.kind": "sgd", "server.lr": 3.0},
    "fgrpo-server-sgd-lr4": {"server.kind": "sgd", "server.lr": 4.0},
    "fgrpo-fedavgm": {"server.kind": "fedavgm", "server.lr": 1.0, "server.beta1": 0.9},
    "fgrpo-fedavgm-lr2-b0.5": {"server.kind": "fedavgm", "server.lr": 2.0, "server.beta1": 0.5},
    "fgrpo-fedadam": {"server.kind": "fedadam", "server.lr": 0.01, "server.tau": 1e-3},
    "fgrpo-fedadam-lr0.003": {"server.kind": "fedadam", "server.lr": 0.003, "server.tau": 1e-3},
    "fgrpo-steps12": {"grpo.steps": 12, "grpo.prompts_per_step": 8, "grpo.oversample": 12},
    "fgrpo-steps24": {"grpo.steps": 24, "grpo.prompts_per_step": 4, "grpo.oversample": 6},
    "fgrpo-steps24-server-sgd-lr1.5": {"grpo.steps": 24, "grpo.prompts_per_step": 4, "grpo.oversample": 6,
                                       "server.kind": "sgd", "server.lr": 1.5},
    "fgrpo-pubswap": {"pubswap.enabled": True},
    "fgrpo-pubswap-server-sgd-lr3": {"pubswap.enabled": True, "server.kind": "sgd", "server.lr": 3.0},
    "fgrpo-pubswap-steps24": {"pubswap.enabled": True, "grpo.steps": 24, "grpo.prompts_per_step": 4,
                              "grpo.oversample": 6},
}
LABELS.update({m: m for m in LEVERS})
# The table's default rows: the baselines and the levers that matter (probe: convergence_probe.md).
TABLE = (*METHODS, "fgrpo-server-sgd-lr3", "fgrpo-steps24")
STRATEGY = {"fedavg": "fedavg"}  # every other federated method runs FGRPO
FEDERATED = ("fgrpo", "fedavg", *VARIANTS, *LEVERS)
ALL = (*METHODS, *VARIANTS, *LEVERS, "local-best")
# Test-sized settings (the test suite's quick tiny model) for a smoke run of the script itself.
QUICK: dict[str, Any] = {
    "model.embedded": {"warm_steps": 40, "warm_batch": 32, "seed": 1}, "model.lora.r": 4,
    "grpo.steps": 2, "grpo.group_size": 4, "grpo.prompts_per_step": 4, "grpo.oversample": 6,
    "grpo.sampling.max_new_tokens": 6, "grpo.loss.max_completion_length": 6, "eval.max_new_tokens": 6,
    "data.train_size": 40, "data.eval_size": 8, "data.global_eval_size": 16,
}


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: a method on a seed (local-only: one client of it)."""

    method: str
    seed: int
    rounds: int
    overrides: dict[str, Any] = field(default_factory=dict)
    client: str | None = None

    def cost(self, n_clients: int) -> int:
        return 1 if self.client else n_clients


def make_config(seed: int, rounds: int, overrides: dict[str, Any], strategy: str = "fgrpo") -> RunConfig:
    # One single-threaded trainer per unit: units run side by side, not clients.
    return demo_config(**{"seed": seed, "federation.rounds": rounds, "federation.strategy": strategy,
                          "federation.workers": 1, **overrides})


def method_overrides(method: str) -> dict[str, Any]:
    """What a named method changes on top of the demo's FGRPO run (printed in the markdown)."""
    return {**VARIANTS.get(method, {}), **LEVERS.get(method, {})}


def unavailable(method: str) -> str | None:
    """Why this build cannot run ``method`` (a lever whose config table it lacks), else None."""
    tables = {f.name for f in fields(RunConfig)}
    missing = sorted({k.split(".")[0] for k in method_overrides(method)} - tables)
    return f"{method} needs [{missing[0]}]: not in this build" if missing else None


def _quiet_worker() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _eval_seed(cfg: RunConfig) -> int:
    """The seed Federation.evaluate_global uses: every method is scored on the same samples."""
    return eval_seed(cfg.seed)


def _federated(unit: Unit, root: Path) -> dict[str, Any]:
    cfg = make_config(unit.seed, unit.rounds, {**unit.overrides, **method_overrides(unit.method)},
                      STRATEGY.get(unit.method, "fgrpo"))
    run_dir = root / f"{unit.method}-{unit.seed}"
    rows = Federation(cfg, run_dir).run().rounds  # what the holder of the global model recorded
    acc = {r["round"]: r["global_accuracy"] for r in rows}
    clients = {n: {k: [r.get(k) for r in crows] for k in ("weight", "gain", "mean_reward", "eval_accuracy_of_global")}
               for n, crows in client_rows(run_dir).items()}
    return {"accuracy": [acc[r] for r in range(unit.rounds + 1)], "global_rows": rows, "clients": clients}


@dataclass
class _Reward:
    spec: RewardSpec

    def __call__(self, problem: Problem, completion: str, finished: bool) -> float:
        return score(problem, completion, finished, self.spec)


def _single_party(unit: Unit) -> dict[str, Any]:
    """Centralized GRPO on the pooled prompts, or one client training alone. Both keep one
    AdamW across rounds (nothing outside changes their adapter) and are evaluated after every
    round's worth of steps on the federation's global held-out set."""
    cfg = make_config(unit.seed, unit.rounds, unit.overrides)
    data = build_data(cfg)
    torch.manual_seed(cfg.seed)
    base, tok = load_base(resolve_model_path(cfg.model.path, cfg.model.embedded))
    model = attach_lora(base, cfg.model.lora)
    rollout = make_rollout(cfg.model.rollout)
    if unit.client is None:  # pooled data, one 0/1 reward, clients x steps per round
        pool = [p for c in cfg.clients for p in data.clients[c.name].train]
        reward, grpo, own_eval = _Reward(RewardSpec()), replace(cfg.grpo, steps=cfg.grpo.steps * len(cfg.clients)), None
    else:
        ccfg = next(c for c in cfg.clients if c.name == unit.client)
        pool, reward, grpo = data.clients[unit.client].train, _Reward(ccfg.reward), cfg.grpo
        own_eval = data.clients[unit.client].eval
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=grpo.lr, weight_decay=0.0)
    sampling = SamplingSpec(cfg.eval.max_new_tokens, cfg.eval.temperature)

    def evaluate() -> tuple[float, float | None]:
        glob = pass_at_1(model, tok, rollout, data.global_eval, sampling, seed=_eval_seed(cfg))
        own = pass_at_1(model, tok, rollout, own_eval, sampling, seed=_eval_seed(cfg) ^ 0x5EED) if own_eval else None
        return glob, own

    curve, own_curve, rewards = [], [], []
    for r in range(unit.rounds + 1):
        if r > 0:
            tag = ("train", unit.client, r) if unit.client else ("central", r)
            res = train_round(model, tok, rollout, pool, reward, grpo, seed=derive_seed(cfg.seed, *tag),
                              make_optimizer=lambda _params: opt, max_reward=reward.spec.scale)
            rewards.append(res.mean_reward)
        glob, own = evaluate()
        curve.append(glob)
        own_curve.append(own)
    out: dict[str, Any] = {"accuracy": curve, "mean_reward": rewards}
    if unit.client:
        out["own_eval_accuracy"] = own_curve
    return out


def run_unit(unit: Unit, root: str) -> dict[str, Any]:
    _quiet_worker()
    t0, c0 = time.perf_counter(), time.process_time()
    federated = unit.method in FEDERATED
    body = _federated(unit, Path(root)) if federated else _single_party(unit)
    return {"method": unit.method, "seed": unit.seed, "client": unit.client, **body,
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "loadavg_at_end": list(os.getloadavg())}


def _spread(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs)}


def summarise(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Per method and seed one curve (local-only: mean over clients, and the client with the best
    final accuracy), then mean/std/min/max over seeds of final accuracy, gain, and time."""
    curves: dict[str, dict[int, list[float]]] = {m: {} for m in ALL}
    walls: dict[str, dict[int, float]] = {m: {} for m in curves}
    for run in runs:
        if run["method"] != "local":
            curves[run["method"]][run["seed"]] = run["accuracy"]
            walls[run["method"]][run["seed"]] = run["wall_s"]
    for s in seeds:
        mine = [r for r in runs if r["method"] == "local" and r["seed"] == s]
        if not mine:
            continue
        curves["local"][s] = [statistics.fmean(v) for v in zip(*(r["accuracy"] for r in mine), strict=True)]
        curves["local-best"][s] = max(mine, key=lambda r: r["accuracy"][-1])["accuracy"]
        walls["local"][s] = walls["local-best"][s] = sum(r["wall_s"] for r in mine)
    out: dict[str, Any] = {}
    for m, by_seed in curves.items():
        if not by_seed:
            continue
        cs = [by_seed[s] for s in sorted(by_seed)]
        out[m] = {
            "seeds": sorted(by_seed), "curves": cs,
            "curve_mean": [statistics.fmean(v) for v in zip(*cs, strict=True)],
            "curve_min": [min(v) for v in zip(*cs, strict=True)], "curve_max": [max(v) for v in zip(*cs, strict=True)],
            "final": _spread([c[-1] for c in cs]),
            "round0": _spread([c[0] for c in cs]),
            "gain_over_round0": _spread([c[-1] - c[0] for c in cs]),
            "mean_over_rounds": _spread([statistics.fmean(c[1:]) for c in cs]),
            "wall_s": _spread([walls[m][s] for s in sorted(by_seed)]),
        }
    central = curves["centralized"]
    for m, d in out.items():  # per seed: the method's gain over centralized's on the same seed
        both = [s for s in d["seeds"] if s in central and central[s][-1] != central[s][0]]
        if both and m != "centralized":
            d["gain_pct_of_centralized"] = _spread([(curves[m][s][-1] - curves[m][s][0])
                                                    / (central[s][-1] - central[s][0]) for s in both])
    return out


def _key(run: dict[str, Any]) -> tuple[str, int, str | None]:
    return run["method"], run["seed"], run.get("client")


def merge_runs(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s runs replace ``old``'s with the same (method, seed, client); the rest are kept, so
    ``--methods X`` adds X's rows to a finished table. Refuses (ValueError, one line) to mix runs
    of different lengths or sizes."""
    if old is None:
        return {**new, "invocations": [_invocation(new)]}
    if why := mismatch(old["settings"], new["settings"]):
        raise ValueError(why)
    fresh = {_key(r) for r in new["runs"]}
    runs = [r for r in old["runs"] if _key(r) not in fresh] + new["runs"]
    seeds = sorted({r["seed"] for r in runs})
    methods = [m for m in ALL if any(r["method"] == m for r in runs)]
    settings = {**new["settings"], "seeds": seeds, "methods": methods}
    invocations = [*old.get("invocations", [_invocation(old)]), _invocation(new)]
    return {**new, "settings": settings, "runs": runs, "summary": summarise(runs, seeds), "invocations": invocations,
            "total_wall_s": sum(i["total_wall_s"] for i in invocations)}


def mismatch(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why runs with settings ``new`` cannot join a table with settings ``old`` (else None)."""
    for key in ("rounds", "quick"):
        if old[key] != new[key]:
            return (f"{key} = {new[key]!r} but the existing results have {old[key]!r}: "
                    "use another --out or --stem")
    return None


def _invocation(result: dict[str, Any]) -> dict[str, Any]:
    return {"command": result["command"], "total_wall_s": result["total_wall_s"], "machine": result["machine"],
            "methods": sorted({r["method"] for r in result["runs"]}),
            "seeds": sorted({r["seed"] for r in result["runs"]})}


def _pm(d: dict[str, float], pct: bool = True) -> str:
    k = 100.0 if pct else 1.0
    return f"{k * d['mean']:.1f} ± {k * d['std']:.1f} ({k * d['min']:.1f}–{k * d['max']:.1f})"


# A hand-written verdict above this line in <stem>.md survives --replot and --methods merges.
VERDICT_END = "<!-- end of the verdict: everything below is generated by benchmarks/convergence.py -->"


def _kept_verdict(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    return [text.split(VERDICT_END)[0].rstrip("\n"), "", VERDICT_END, ""] if VERDICT_END in text else []


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    s, summ = result["settings"], result["summary"]
    title = ("GRPO variants inside FGRPO" if s.get("variants")
             else "FGRPO vs FedAvg vs centralized vs local-only"
             + (", and the levers on the gap to centralized" if set(summ) & set(LEVERS) else ""))
    invocations = result.get("invocations", [_invocation(result)])
    lines = [
        *_kept_verdict(path),
        f"# Convergence: {title}", "",
        *[f"    {i['command']}" for i in invocations], "",
        *([f"Merged from {len(invocations)} runs:", "",
           *[f"- methods {', '.join(i['methods'])} on seeds {i['seeds']}, {i['total_wall_s']:.0f} s"
             for i in invocations], ""] if len(invocations) > 1 else []),
        *(["**Probe: one seed.** One evaluation of 200 prompts has a standard error of up to 3.5 points; "
           "read gaps under ~5 points as noise.", ""]
          if len(s["seeds"]) == 1 else []),
        f"Demo federation (4 institutions, non-IID family mixes, reward scales 1/10/partial/format), "
        f"{s['rounds']} rounds, seeds {s['seeds']}, {s['steps_per_round_per_client']} GRPO steps per client "
        f"per round ({s['rollouts_per_step']} rollouts/step); every method gets "
        f"{s['total_grpo_steps']} GRPO steps in all. Accuracy: sampled pass@1 (T = "
        f"{s['eval_temperature']}) on the global held-out set: "
        f"{s.get('global_eval_about', str(s['global_eval_size']) + OLD_SET)}; in %. "
        f"mean ± std (min–max) over seeds.", "",
        *([f"Variants (overrides on the demo's FGRPO run): {json.dumps(s['variants'])}.", ""]
          if s.get("variants") else []),
        "| method | seeds | final accuracy | round 0 | gain over round 0 | gain as % of centralized "
        "| mean over rounds 1..R | wall s / seed (1 thread) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in ALL:
        if m in summ:
            d = summ[m]
            pct = _pm(d["gain_pct_of_centralized"]) if "gain_pct_of_centralized" in d else "—"
            lines.append(f"| {LABELS[m]} | {','.join(map(str, d['seeds']))} | {_pm(d['final'])} | {_pm(d['round0'])} | {_pm(d['gain_over_round0'])} "
                         f"| {pct} | {_pm(d['mean_over_rounds'])} | {d['wall_s']['mean']:.0f} |")
    named = [m for m in summ if method_overrides(m)]
    if named and not s.get("variants"):
        lines += ["", "Overrides on the demo's FGRPO run (what each named row sets; `[server]`: "
                  "federation/update.py):", "", *[f"- `{m}`: `{json.dumps(method_overrides(m))}`" for m in named]]
    lines += ["", "Accuracy by round (mean over seeds, %):", "",
              "| round | " + " | ".join(LABELS[m] for m in summ) + " |",
              "|---" * (len(summ) + 1) + "|"]
    for r in range(s["rounds"] + 1):
        lines.append(f"| {r} | " + " | ".join(f"{100 * summ[m]['curve_mean'][r]:.1f}" for m in summ) + " |")
    mach = result["machine"]
    lines += ["", f"Machine: {mach['platform']}, {mach['cpu_count']} CPUs shared with other jobs; "
              f"load average {mach['loadavg_start'][0]:.2f} at start, {mach['loadavg_end'][0]:.2f} at end; "
              f"{s['workers']} units in parallel; total {result['total_wall_s']:.0f} s. "
              f"Gain as % of centralized: per seed, the method's gain over round 0 divided by centralized "
              f"GRPO's on the same seed, then mean ± std (min–max) over seeds. "
              f"Raw numbers: {path.with_suffix('.json').name}; plot: {path.with_suffix('.png').name}.", ""]
    path.write_text("\n".join(lines))


def write_plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = result["summary"]
    fig, (ax, gx) = plt.subplots(1, 2, figsize=(11, 4.3), dpi=120)
    styles = {"fgrpo": "C0-o", "fedavg": "C1-s", "centralized": "C2-^", "local": "C3-d", "local-best": "C3:",
              "fgrpo+ngrpo": "C4-v", "fgrpo+mu2": "C5-s", "fgrpo+gspo-mu2": "C6-D"}
    for m, d in summ.items():
        xs = list(range(len(d["curve_mean"])))
        lw = 1 if m == "local-best" else 2
        if m not in styles:  # the levers: three colours, one marker each
            i = list(LEVERS).index(m)
            styles[m] = f"C{7 + i % 3}-" + "ox*+PhX<>p1234"[i]
        style = styles[m]
        ax.plot(xs, [100 * v for v in d["curve_mean"]], style, label=LABELS[m], lw=lw)
        gains = [[100 * (c[r] - c[0]) for r in xs] for c in d["curves"]]
        gx.plot(xs, [statistics.fmean(g) for g in zip(*gains, strict=True)], styles[m], label=LABELS[m], lw=lw)
        if m != "local-best":
            gx.fill_between(xs, [min(g) for g in zip(*gains, strict=True)], [max(g) for g in zip(*gains, strict=True)],
                            color=styles[m][:2], alpha=0.12)
    ax.set_ylabel("global held-out pass@1, % (mean over seeds)")
    gx.set_ylabel("gain over round 0, points (mean, min–max band)")
    gx.axhline(0, color="k", lw=0.8)
    for a in (ax, gx):
        a.set_xlabel("round (same GRPO-step budget for every method)")
        a.xaxis.get_major_locator().set_params(integer=True)
        a.grid(alpha=0.3)
    gx.legend(fontsize=8)
    fig.suptitle(f"demo federation (non-IID, heterogeneous reward scales), seeds {result['settings']['seeds']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _units(seeds: list[int], rounds: int, overrides: dict[str, Any], clients: list[str],
           methods: tuple[str, ...] = METHODS, variants: bool = False) -> list[Unit]:
    if variants:
        return [Unit(m, s, rounds, overrides) for s in seeds for m in ("fgrpo", *VARIANTS)]
    units = [Unit(m, s, rounds, overrides) for s in seeds for m in methods if m != "local"]
    units += [Unit("local", s, rounds, overrides, c) for s in seeds for c in clients if "local" in methods]
    return sorted(units, key=lambda u: -u.cost(len(clients)))  # longest first: tighter packing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None,
                    help=f"federated rounds (default the demo's {DEMO['federation']['rounds']}; 2 with --quick)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; 0,1 with --quick)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    ap.add_argument("--quick", action="store_true", help="test-sized model and settings: a smoke run")
    ap.add_argument("--workers", type=int, default=2, help="units run in parallel (one core each)")
    ap.add_argument("--methods", default=",".join(TABLE),
                    help=f"comma-separated methods (default {','.join(TABLE)}); any of "
                         f"{','.join((*METHODS, *LEVERS))}; merged into an existing <stem>.json")
    ap.add_argument("--stem", default=None, help="output file name without suffix (default convergence)")
    ap.add_argument("--replot", type=Path, default=None, help="re-render .md/.png from a convergence.json")
    ap.add_argument("--variants", action="store_true",
                    help="FGRPO with each GRPO variant (NGRPO, GSPO) instead of the four methods")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.replot:
        result = json.loads(args.replot.read_text())
        result["summary"] = summarise(result["runs"], result["settings"]["seeds"])
        args.replot.write_text(json.dumps(result, indent=1))
        write_markdown(args.replot.with_suffix(".md"), result)
        write_plot(args.replot.with_suffix(".png"), result)
        return 0
    rounds = args.rounds or (2 if args.quick else DEMO["federation"]["rounds"])
    seeds = [int(x) for x in (args.seeds or ("0,1" if args.quick else "0,1,2")).split(",")]
    out = args.out or (Path(tempfile.gettempdir()) / "secure_fgrpo_convergence_quick" if args.quick else RESULTS)
    overrides = dict(QUICK) if args.quick else {}
    methods = tuple(m for m in args.methods.split(",") if m)
    if rounds < 1 or args.workers < 1 or not seeds:
        ap.error("--rounds and --workers must be >= 1 and --seeds non-empty")
    if not methods or set(methods) - {*METHODS, *LEVERS}:
        ap.error(f"--methods: expected a subset of {','.join((*METHODS, *LEVERS))}, got {args.methods!r}")
    for m in methods:
        if why := unavailable(m):
            ap.error(f"--methods: {why}")
    stem = out / (args.stem or ("convergence_variants" if args.variants else "convergence"))
    old = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else None
    if old and not args.variants and (why := mismatch(old["settings"], {"rounds": rounds, "quick": args.quick})):
        ap.error(f"{stem}.json: {why}")
    cfg = make_config(seeds[0], rounds, overrides)
    clients = [c.name for c in cfg.clients]
    resolve_model_path(cfg.model.path, cfg.model.embedded)  # build/cache the model once, before the workers
    command = shlex.join([os.path.relpath(sys.executable, REPO), os.path.relpath(__file__, REPO),
                          *(sys.argv[1:] if argv is None else argv)])
    load0, t0 = list(os.getloadavg()), time.perf_counter()
    units = _units(seeds, rounds, overrides, clients, methods, args.variants)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="convergence-") as root, ProcessPoolExecutor(
            args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [(u, pool.submit(run_unit, u, root)) for u in units]
        for u, fut in futures:
            runs.append(fut.result())
            r = runs[-1]
            log.info("%s seed %d%s: accuracy %s (%.0f s, load %.2f)", u.method, u.seed,
                     f" {u.client}" if u.client else "", " ".join(f"{a:.3f}" for a in r["accuracy"]),
                     r["wall_s"], r["loadavg_at_end"][0])
    result = {
        "command": command,
        "settings": {"rounds": rounds, "seeds": seeds, "quick": args.quick, "workers": args.workers,
                     "overrides": overrides, "clients": clients, "methods": list(methods),
                     "variants": VARIANTS if args.variants else None,
                     "steps_per_round_per_client": cfg.grpo.steps,
                     "rollouts_per_step": cfg.grpo.oversample * cfg.grpo.group_size,
                     "total_grpo_steps": rounds * len(clients) * cfg.grpo.steps,
                     "global_eval_size": cfg.data.global_eval_size, "eval_temperature": cfg.eval.temperature,
                     "global_eval_about": build_data(cfg).describe_global_eval(),
                     "centralized_reward": "0/1 correctness (RewardSpec scale 1, no partial credit, no format term)",
                     "config_seed0": to_dict(cfg)},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "cpu_count": os.cpu_count(), "loadavg_start": load0,
                    "loadavg_end": list(os.getloadavg())},
        "total_wall_s": time.perf_counter() - t0,
        "summary": summarise(runs, seeds),
        "runs": runs,
    }
    result = merge_runs(None if args.variants else old, result)
    out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    write_markdown(stem.with_suffix(".md"), result)
    write_plot(stem.with_suffix(".png"), result)
    log.info("wrote %s.{json,md,png}", stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
