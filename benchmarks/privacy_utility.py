"""Privacy-utility benchmark: final held-out accuracy of the demo federation (four institutions,
non-IID task mixes and reward scales) against the privacy budget ε (δ = 1e-5), for

- example-level DP-SGD (each patient record: one prompt with its group of completions), and
- client-level distributed DP (each institution; Skellam integer noise inside the masked words
  by default, the sum calibrated for the threshold t of survivors),

both through the masked secure sum, over several seeds; plus the DP-SGD update-step time
against a non-private update on the same batch. Every row uses the DP-tuned settings TUNED /
TUNED_EXAMPLE below (``--untuned``: the demo's own).

    .venv/bin/python benchmarks/privacy_utility.py [--rounds 3] [--seeds 0,1,2] [--eps inf,16,8,4,2,1]
    .venv/bin/python benchmarks/privacy_utility.py --quick          # smoke run, writes to /tmp
    .venv/bin/python benchmarks/privacy_utility.py --replot benchmarks/results/privacy_utility.json

    .venv/bin/python benchmarks/privacy_utility.py --rounds 6 --eps inf,8 --modes example --name privacy_utility_6rounds

writes NAME.{json,md,png} (--name, default privacy_utility) under --out (default benchmarks/results). Each
(mode, ε, seed) unit runs single-threaded in its own worker process; with
--set 'model.device="cuda"' the units share the GPU (minutes instead of hours). Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from secure_fgrpo.config import RunConfig
from secure_fgrpo.configio import to_dict
from secure_fgrpo.demo import DP_SGD_EXAMPLE_LEVEL, DP_SGD_SETTINGS, demo_config
from secure_fgrpo.federation.datasets import build_data
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.report import client_rows

log = logging.getLogger("privacy_utility")
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DELTA = 1e-5
MODES = ("example", "client")
OLD_SET = " prompts; the old set, which overlapped the warm start"
LABELS = {"none": "non-private", "matched": "non-private, DP-SGD's batch", "example": "example-level DP-SGD",
          "client": "client-level distributed DP"}


def label(mode: str, settings: dict[str, Any]) -> str:
    mech = settings.get("client_mechanism", "distributed")
    return LABELS[mode] + (f" ({'Skellam' if mech == 'skellam' else 'Gaussian'})" if mode == "client" else "")
QUICK: dict[str, Any] = {  # the test suite's tiny model and sizes: a smoke run of the script itself
    "model.embedded": {"warm_steps": 40, "clean_steps": 30, "warm_batch": 32, "seed": 1}, "model.lora.r": 4,
    "grpo.steps": 2, "grpo.group_size": 4, "grpo.prompts_per_step": 4, "grpo.oversample": 6,
    "grpo.sampling.max_new_tokens": 6, "grpo.loss.max_completion_length": 6, "eval.max_new_tokens": 6,
    "data.train_size": 40, "data.eval_size": 8, "data.global_eval_size": 16,
}
# Every row (the non-private baseline included) runs the demo's DP-tuned settings, the same
# ones `secure-fgrpo demo --dp example:EPS` uses (secure_fgrpo/demo.py explains each).
TUNED, TUNED_EXAMPLE = DP_SGD_SETTINGS, DP_SGD_EXAMPLE_LEVEL


@dataclass(frozen=True)
class Unit:
    mode: str  # "none" (ε = ∞), "matched" (ε = ∞, DP-SGD's prompts per step), "example" or "client"
    epsilon: float
    seed: int
    rounds: int
    overrides: dict[str, Any] = field(default_factory=dict)
    example_options: dict[str, Any] = field(default_factory=dict)  # extra privacy.example_level keys
    client_mechanism: str = "skellam"  # privacy.client_level.mechanism


def make_config(unit: Unit) -> RunConfig:
    over: dict[str, Any] = {"seed": unit.seed, "federation.rounds": unit.rounds, "federation.workers": 1,
                            "secure_sum.backend": "masked", **unit.overrides}
    if unit.mode == "matched":  # roll out and train on as many prompts per step as DP-SGD samples
        cfg = demo_config(**over)
        q = unit.example_options.get("sample_rate") or cfg.grpo.oversample / cfg.data.train_size
        over["grpo.oversample"] = over["grpo.prompts_per_step"] = max(1, round(q * cfg.data.train_size))
    if unit.mode == "example":
        over["privacy.example_level"] = {"epsilon": unit.epsilon, "delta": DELTA, **unit.example_options}
    elif unit.mode == "client":
        over["privacy.client_level"] = {"epsilon": unit.epsilon, "delta": DELTA,
                                         "mechanism": unit.client_mechanism}
    return demo_config(**over)


def _quiet_worker() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def run_unit(unit: Unit, root: str) -> dict[str, Any]:
    _quiet_worker()
    t0 = time.perf_counter()
    cfg = make_config(unit)
    run_dir = Path(root) / f"{unit.mode}-{unit.epsilon}-{unit.seed}"
    summary = Federation(cfg, run_dir).run()
    acc = [r["global_accuracy"] for r in summary.rounds]
    server = [json.loads(x) for x in (run_dir / "server" / "metrics.jsonl").read_text().splitlines() if x]
    clients = client_rows(run_dir)
    spent = ([r.get("dp_client_epsilon") for r in server] if unit.mode == "client" else
             [max(rows[i]["dp_example_epsilon"] for rows in clients.values()) for i in range(len(server))]
             if unit.mode == "example" else [])
    seconds = [r["seconds"] for rows in clients.values() for r in rows]
    return {"mode": unit.mode, "epsilon": unit.epsilon, "seed": unit.seed, "accuracy": acc,
            "epsilon_spent": spent, "stopped": summary.stopped,
            "noise_multiplier": (server[0].get("dp_client_noise_multiplier") if unit.mode == "client" else
                                 next(iter(clients.values()))[0].get("dp_example_noise_multiplier")
                                 if unit.mode == "example" else 0.0),
            "client_seconds_per_round": statistics.fmean(seconds) if seconds else None,
            "wall_s": time.perf_counter() - t0, "loadavg_at_end": list(os.getloadavg())}


def step_overhead(overrides: dict[str, Any], reps: int) -> dict[str, Any]:
    """Median time of one policy-gradient update (forward, backward, optimizer step) on one fixed
    rollout batch: non-private vs DP-SGD (per-sample gradients, per-group clip, noise)."""
    from secure_fgrpo.federation.datasets import build_data
    from secure_fgrpo.grpo.advantages import group_advantages
    from secure_fgrpo.grpo.logprobs import completion_logprobs
    from secure_fgrpo.grpo.loss import policy_loss
    from secure_fgrpo.model.load import load_base, resolve_model_path
    from secure_fgrpo.model.lora import attach_lora
    from secure_fgrpo.privacy.config import ExampleDPSettings
    from secure_fgrpo.privacy.dpsgd import GroupDPSGD
    from secure_fgrpo.rollout import make_rollout

    _quiet_worker()
    cfg = make_config(Unit("none", math.inf, 0, 1, overrides))
    g, pool = cfg.grpo.group_size, build_data(cfg).clients[cfg.clients[0].name].train
    base, tok = load_base(resolve_model_path(cfg.model.path, cfg.model.embedded), device=cfg.model.device)
    model = attach_lora(base, cfg.model.lora)
    prompts = [p.prompt for p in pool[: cfg.grpo.prompts_per_step]]
    batch = make_rollout(cfg.model.rollout).generate(model, tok, prompts, g, cfg.grpo.sampling, 0)
    adv = group_advantages(torch.randn(len(prompts) * g), g).to(batch.sequences.device)
    mask = batch.completion_mask.float()
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()

    def plain() -> None:
        logps = completion_logprobs(model, batch)
        out = policy_loss(logps, logps.detach(), adv, mask, cfg.grpo.loss)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grpo.max_grad_norm)
        opt.step()

    def private() -> None:
        engine.step(completion_logprobs(model, batch), None, adv, mask, cfg.grpo.loss, None, g)

    times: dict[str, list[float]] = {}
    opt = torch.optim.AdamW(params, lr=0.0)
    for name, fn in (("plain", plain), ("dp", private), ("plain", plain), ("dp", private)):  # interleaved
        if name == "dp":
            engine = GroupDPSGD(ExampleDPSettings(1.0, 1.0, 0.5), model, torch.optim.AdamW(params, lr=0.0), len(pool))
        fn()  # warm-up
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            if batch.sequences.is_cuda:  # kernels run asynchronously: time their completion
                torch.cuda.synchronize()
            times.setdefault(name, []).append(time.perf_counter() - t)
        if name == "dp":
            engine.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"groups": len(prompts), "group_size": g, "trainable_params": sum(p.numel() for p in params),
            "reps": 2 * reps, "median_s": med, "ratio": med["dp"] / med["plain"], "threads": 1}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def gain_of(mode: str) -> float:
        base = [r["accuracy"] for r in runs if r["mode"] == mode]
        return statistics.fmean(a[-1] - a[0] for a in base) if base else float("nan")

    base_gain, matched_gain = gain_of("none"), gain_of("matched")
    out: dict[str, Any] = {"base_gain": base_gain, "matched_gain": matched_gain}
    for mode in ("none", "matched", *MODES):
        for eps in sorted({r["epsilon"] for r in runs if r["mode"] == mode}, reverse=True):
            mine = [r for r in runs if r["mode"] == mode and r["epsilon"] == eps]
            finals = [r["accuracy"][-1] for r in mine]
            gains = [r["accuracy"][-1] - r["accuracy"][0] for r in mine]
            secs = [r["client_seconds_per_round"] for r in mine if r["client_seconds_per_round"]]
            out[f"{mode}:{eps}"] = {
                "mode": mode, "epsilon": eps, "seeds": [r["seed"] for r in mine],
                "final_mean": statistics.fmean(finals),
                "final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                "gain_mean": statistics.fmean(gains),
                "retained": statistics.fmean(gains) / base_gain if base_gain > 0 else float("nan"),
                "retained_matched": statistics.fmean(gains) / matched_gain if matched_gain > 0 else float("nan"),
                "spent_max": max((r["epsilon_spent"][-1] for r in mine if r["epsilon_spent"]), default=0.0),
                "noise_multiplier": statistics.fmean(r["noise_multiplier"] or 0.0 for r in mine),
                "client_seconds_per_round": statistics.fmean(secs) if secs else None,
                "stopped": [r["stopped"] for r in mine if r["stopped"]],
            }
    return out


def _eps(e: float) -> str:
    return "∞" if math.isinf(e) else f"{e:g}"


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    s, summ, step = result["settings"], result["summary"], result["step_overhead"]
    lines = ["# Privacy vs utility", "", "    " + result["command"], "",
             f"Demo federation (4 institutions, non-IID), masked secure sum, {s['rounds']} rounds, seeds "
             f"{s['seeds']}, δ = {DELTA:g}. Accuracy: sampled pass@1 on the global held-out set ("
             f"{s.get('global_eval_about', str(s['global_eval_size']) + OLD_SET)}"
             "), %, mean ± std over seeds. *Retained* = gain over round 0 / the non-private gain "
             f"(non-private gain: {100 * summ['base_gain']:.1f} points); *vs matched* = the same over the "
             "non-private run that rolls out and trains on as many prompts per step as DP-SGD's expected "
             f"Poisson batch (gain {100 * summ.get('matched_gain', math.nan):.1f} points): the fairer "
             "comparison, since DP-SGD's larger batch is part of its tuning. z = noise multiplier the target "
             "ε needs.", "",
             *([f"Overrides: `{json.dumps(s['overrides'])}`; example-level options: "
                f"`{json.dumps(s.get('example_options', {}))}`.", ""]
               if s["overrides"] or s.get("example_options") else []),
             "| mechanism | target ε | final accuracy | gain (points) | retained | vs matched | ε spent | z "
             "| client s/round |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d in summ.values():
        if not isinstance(d, dict):
            continue
        vs = d.get("retained_matched", math.nan)
        secs = f"{d['client_seconds_per_round']:.1f}" if d["client_seconds_per_round"] else ""
        lines.append(f"| {label(d['mode'], s)} | {_eps(d['epsilon'])} | {100 * d['final_mean']:.1f} ± "
                     f"{100 * d['final_std']:.1f} | {100 * d['gain_mean']:+.1f} | {100 * d['retained']:.0f} % | "
                     f"{'' if math.isnan(vs) else f'{100 * vs:.0f} %'} | {d['spent_max']:.2f} | "
                     f"{d['noise_multiplier']:.3g} | {secs} |")
    device = s["overrides"].get("model.device", "cpu")
    where = "1 CPU thread" if device == "cpu" else f"on {device} ({result['machine'].get('gpu', 'GPU')})"
    lines += ["", f"DP-SGD update step (forward + backward + optimizer step on one batch of {step['groups']} "
              f"groups × {step['group_size']} completions, {step['trainable_params']} LoRA parameters, {where}, "
              f"median of {step['reps']}): non-private {1000 * step['median_s']['plain']:.1f} ms, DP-SGD "
              f"{1000 * step['median_s']['dp']:.1f} ms (× {step['ratio']:.2f}). A whole local step also rolls "
              "out the group's completions, which DP does not change: see the client s/round column.", ""]
    if s.get("merged"):
        lines += [f"Note: {s['merged']}.", ""]
    mach = result["machine"]
    lines += [f"Machine: {mach['platform']}, {mach['cpu_count']} CPUs shared with other jobs; load average "
              f"{mach['loadavg_start'][0]:.2f} at start, {mach['loadavg_end'][0]:.2f} at end; {s['workers']} units "
              f"in parallel; total {result['total_wall_s']:.0f} s. Raw numbers: {path.stem}.json.", ""]
    path.write_text("\n".join(lines))


def write_plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = result["summary"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    rows = [d for d in summ.values() if isinstance(d, dict)]
    base = [d for d in rows if d["mode"] == "none"]
    if base:
        ax.axhline(100 * base[0]["final_mean"], color="k", ls="--", lw=1, label="non-private (ε = ∞)")
    matched = [d for d in rows if d["mode"] == "matched"]
    if matched:
        ax.axhline(100 * matched[0]["final_mean"], color="C2", ls="--", lw=1,
                   label="non-private, DP-SGD's batch (ε = ∞)")
    start = [r["accuracy"][0] for r in result["runs"]]
    ax.axhline(100 * statistics.fmean(start), color="grey", ls=":", lw=1, label="round 0 (before training)")
    for mode, style in (("example", "C0-o"), ("client", "C3-s")):
        ds = sorted((d for d in rows if d["mode"] == mode), key=lambda d: d["epsilon"])
        if ds:
            ax.errorbar([d["epsilon"] for d in ds], [100 * d["final_mean"] for d in ds],
                        yerr=[100 * d["final_std"] for d in ds], fmt=style, capsize=3,
                        label=label(mode, result["settings"]))
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"privacy budget ε (δ = {DELTA:g}), whole run")
    ax.set_ylabel("final global held-out pass@1, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"privacy vs utility, masked secure sum, seeds {result['settings']['seeds']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pairs(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="default 3 (2 with --quick)")
    ap.add_argument("--seeds", default=None, help="comma-separated (default 0,1,2; 0 with --quick)")
    ap.add_argument("--eps", default=None, help="comma-separated targets, inf = non-private "
                                                "(default inf,16,8,4,2,1; inf,8,1 with --quick)")
    ap.add_argument("--modes", default="example,client", help="which mechanisms (default both)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="test-sized model and settings: a smoke run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--step-reps", type=int, default=10, help="timed update steps per variant and pass")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="config override for every unit, e.g. model.lora.r=4 (repeatable)")
    ap.add_argument("--example-option", action="append", default=[], metavar="KEY=JSON",
                    help="extra privacy.example_level key, e.g. sample_rate=0.25 or max_grad_norm=1.0")
    ap.add_argument("--client-mechanism", default="skellam", choices=("skellam", "distributed"),
                    help="client-level noise: skellam (integers in the masked words, default) or distributed "
                         "(Gaussian floats before the fixed-point rounding)")
    ap.add_argument("--untuned", action="store_true",
                    help="the demo's own settings instead of the DP-tuned ones (TUNED, TUNED_EXAMPLE)")
    ap.add_argument("--name", default="privacy_utility", help="results file stem (default privacy_utility)")
    ap.add_argument("--replot", type=Path, default=None, help="re-render .md/.png from a privacy_utility.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.replot:
        result = json.loads(args.replot.read_text())
        result["summary"] = summarise(result["runs"])
        write_markdown(args.replot.with_suffix(".md"), result)
        write_plot(args.replot.with_suffix(".png"), result)
        return 0
    rounds = args.rounds or (2 if args.quick else 3)
    seeds = [int(x) for x in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    targets = [float(x) for x in (args.eps or ("inf,8,1" if args.quick else "inf,16,8,4,2,1")).split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if not args.name or Path(args.name).name != args.name:
        ap.error(f"--name must be a plain file stem (no directory), got {args.name!r}: use --out for the folder")
    if any(m not in MODES for m in modes) or rounds < 1 or args.workers < 1 or not seeds:
        ap.error(f"--modes from {MODES}; --rounds, --workers >= 1; --seeds non-empty")
    out = args.out or (Path(tempfile.gettempdir()) / "secure_fgrpo_privacy_quick" if args.quick else RESULTS)
    tuned, tuned_ex = ({}, {}) if args.untuned else (TUNED, TUNED_EXAMPLE)
    overrides = {**tuned, **(QUICK if args.quick else {}), **_pairs(args.set)}
    ex_opts = {**tuned_ex, **_pairs(args.example_option)}
    units = [Unit(m, math.inf, s, rounds, overrides, ex_opts if m == "matched" else {})
             for m in ("none", "matched") if math.inf in targets and (m == "none" or "example" in modes)
             for s in seeds]
    units += [Unit(m, e, s, rounds, overrides, ex_opts if m == "example" else {}, args.client_mechanism)
              for m in modes for e in targets if not math.isinf(e) for s in seeds]
    cfg = make_config(units[0])
    from secure_fgrpo.model.load import resolve_model_path

    resolve_model_path(cfg.model.path, cfg.model.embedded)  # build/cache the model before the workers
    command = shlex.join([os.path.relpath(sys.executable, REPO), os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    load0, t0 = list(os.getloadavg()), time.perf_counter()
    step = step_overhead(overrides, args.step_reps)
    log.info("update step: plain %.1f ms, DP-SGD %.1f ms", 1000 * step["median_s"]["plain"],
             1000 * step["median_s"]["dp"])
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="privacy-") as root, ProcessPoolExecutor(
            args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [(u, pool.submit(run_unit, u, root)) for u in units]
        for u, fut in futures:
            runs.append(fut.result())
            r = runs[-1]
            log.info("%s ε=%s seed %d: accuracy %s, spent %s (%.0f s)", u.mode, _eps(u.epsilon), u.seed,
                     " ".join(f"{a:.3f}" for a in r["accuracy"]), r["epsilon_spent"][-1:] or "-", r["wall_s"])
    result = {
        "command": command,
        "settings": {"rounds": rounds, "seeds": seeds, "targets": [_eps(e) for e in targets], "modes": modes,
                     "delta": DELTA, "quick": args.quick, "workers": args.workers, "overrides": overrides,
                     "example_options": ex_opts,
                     "client_mechanism": args.client_mechanism,
                     "backend": "masked", "global_eval_size": cfg.data.global_eval_size,
                     "global_eval_about": build_data(cfg).describe_global_eval(),
                     "config_seed0": to_dict(cfg)},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "cpu_count": os.cpu_count(), "loadavg_start": load0, "loadavg_end": list(os.getloadavg())},
        "total_wall_s": time.perf_counter() - t0,
        "step_overhead": step,
        "summary": summarise(runs),
        "runs": runs,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1, default=str))
    write_markdown(out / f"{args.name}.md", result)
    write_plot(out / f"{args.name}.png", result)
    log.info("wrote %s/%s.{json,md,png}", out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
