"""Client-level DP at scale: final global held-out accuracy against ε for a generated population
of 100 and 1,000 clients with Poisson client sampling, so the accountant's amplification is the
mechanism run. Noise: DP-FedAvg-style distributed Gaussian (each sampled client adds its share
so that the t survivors' sum carries σ) through the masked secure sum; RDP accountant at the
Poisson rate q. The non-private row (ε = ∞) comes from the same invocation. Optionally the
client-level canary audit (audit/dp_canary.py) of the same config at one setting, with its
no-noise control.

    .venv/bin/python benchmarks/client_level_scale.py                  # n = 100 (10 a round), 1,000 (30 a round)
    .venv/bin/python benchmarks/client_level_scale.py --audit 100:8     # plus the canary audit at n = 100, ε = 8
    .venv/bin/python benchmarks/client_level_scale.py --quick           # test model, smoke run, writes to /tmp

writes NAME.{json,md,png} (default client_level_scale) under --out (default benchmarks/results).
Units run one after another, each federation on 2 single-threaded workers. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_clients import scale_config

log = logging.getLogger("client_level_scale")
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DELTA = 1e-5


def unit_config(size: int, per_round: int, eps: float, args: argparse.Namespace, seed: int) -> Any:
    over: dict[str, Any] = {"federation.strategy": "uniform", "federation.delta_clip": args.clip,
                            "grpo.lr": args.lr}
    if not math.isinf(eps):
        over["privacy.client_level"] = {"epsilon": eps, "delta": DELTA, "mechanism": "distributed",
                                        "accountant": args.accountant}
    return scale_config(size, per_round, args.rounds, seed=seed, sampling="poisson", quick=args.quick, **over)


def run_unit(size: int, per_round: int, eps: float, seed: int, args: argparse.Namespace, root: Path) -> dict:
    from secure_fgrpo.federation.runner import Federation

    cfg = unit_config(size, per_round, eps, args, seed)
    run_dir = root / f"n{size}-eps{eps}-s{seed}"
    t0 = time.perf_counter()
    summary = Federation(cfg, run_dir).run()
    server = [json.loads(x) for x in (run_dir / "server" / "metrics.jsonl").read_text().splitlines() if x]
    clients = [json.loads(x) for p in (run_dir / "clients").glob("*/metrics.jsonl")
               for x in p.read_text().splitlines() if x]
    norms = [c["delta_norm"] for c in clients]
    return {"size": size, "per_round": per_round, "epsilon": eps, "seed": seed,
            "accuracy": [r["global_accuracy"] for r in summary.rounds], "stopped": summary.stopped,
            "contributors": [r["contributors"] for r in server],
            "epsilon_spent": server[-1].get("dp_client_epsilon", 0.0),
            "epsilon_roster_known": server[-1].get("dp_client_epsilon_roster_known", 0.0),
            "noise_multiplier": server[0].get("dp_client_noise_multiplier", 0.0),
            "sigma": server[0].get("dp_client_sigma", 0.0),
            "update_norm": [r.get("update_norm") for r in server],
            "median_delta_norm": statistics.median(norms) if norms else None,
            "clipped_fraction": statistics.fmean(c["clipped"] for c in clients) if clients else None,
            "wall_s": time.perf_counter() - t0, "loadavg_at_end": list(os.getloadavg())}


def run_audit(setting: str, args: argparse.Namespace) -> dict:
    from secure_fgrpo.audit.dp_canary import audit_client_dp

    n_txt, eps_txt = setting.split(":")
    size, eps = int(n_txt), float(eps_txt)
    per_round = dict(zip(args.sizes, args.per_round, strict=False))[size]
    cfg = unit_config(size, per_round, eps, args, 0)
    out = {"size": size, "per_round": per_round, "epsilon": eps, "rounds": args.rounds}
    for noise in (True, False):
        t0 = time.perf_counter()
        a = audit_client_dp(cfg, args.rounds, noise=noise, seed=0)
        out["noise" if noise else "control_no_noise"] = {
            "best_statistic": a.best_statistic, "epsilon_lower": a.best.epsilon_lower, "epsilon_point": a.best.epsilon,
            "accountant_epsilon": a.accountant_epsilon, "trials": a.trials, "clients": a.clients,
            "participants_round_1": a.participants, "sigma": a.sigma, "seconds": time.perf_counter() - t0}
    return out


def _eps(e: float) -> str:
    return "∞" if math.isinf(e) else f"{e:g}"


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    s = result["settings"]
    lines = ["# Client-level DP at scale", "", "    " + result["command"], "",
             (f"Generated population, Poisson client sampling, uniform weights, distributed Gaussian noise through "
             f"the masked secure sum, {s['accountant'].upper()} accountant at the Poisson rate, δ = {DELTA:g}, "
             f"{s['rounds']} rounds, seeds {s['seeds']}, delta clip C = {s['clip']}, local lr {s['lr']}, "
             "1 GRPO step a round per client. Accuracy: sampled pass@1 on the global held-out set "
             f"({s['global_eval']}), %. ε (amplified): against whoever sees the sums and models; ε (roster known): "
             "against the coordinating server, which sees who was sampled (no amplification; "
             "the most-sampled client)."),
             "", ("| clients | sampled a round (q) | target ε | round 0 → final accuracy | gain (points) | ε spent "
             "(amplified) | ε (roster known) | z | σ of the sum | median ‖Δ‖ | wall (s) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        a = r["accuracy"]
        lines.append(f"| {r['size']} | {statistics.fmean(r['contributors']):.0f} ({r['per_round'] / r['size']:g}) | "
                     f"{_eps(r['epsilon'])} | {100 * a[0]:.1f} → {100 * a[-1]:.1f} | {100 * (a[-1] - a[0]):+.1f} | "
                     f"{r['epsilon_spent']:.2f} | {r['epsilon_roster_known']:.2f} | {r['noise_multiplier']:.3g} | "
                     f"{r['sigma']:.3g} | {r['median_delta_norm'] or 0:.3g} | {r['wall_s']:.0f} |")
    if result.get("audit"):
        au = result["audit"]
        lines += ["", (f"Canary audit (audit/dp_canary.py) of the same config at n = {au['size']}, "
                       f"ε = {_eps(au['epsilon'])}, "
                  f"{au['rounds']} rounds: with noise, ε lower bound {au['noise']['epsilon_lower']:.2f} (point "
                  f"{au['noise']['epsilon_point']:.2f}, accountant {au['noise']['accountant_epsilon']:.2f}); "
                  f"control without noise, lower bound {au['control_no_noise']['epsilon_lower']:.2f} (point "
                  f"{au['control_no_noise']['epsilon_point']:.2f}).")]
    m = result["machine"]
    lines += ["", (f"Machine: {m['platform']}, {m['cpu_count']} CPUs shared with other jobs; load average "
              f"{m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end; total "
              f"{result['total_wall_s']:.0f} s. Raw numbers: {path.stem}.json."), ""]
    path.write_text("\n".join(lines))


def write_plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for i, size in enumerate(sorted({r["size"] for r in result["runs"]})):
        mine = [r for r in result["runs"] if r["size"] == size]
        base = [r["accuracy"][-1] for r in mine if math.isinf(r["epsilon"])]
        if base:
            ax.axhline(100 * statistics.fmean(base), color=f"C{i}", ls="--", lw=1, label=f"n = {size}, non-private")
        dp = sorted((r for r in mine if not math.isinf(r["epsilon"])), key=lambda r: r["epsilon"])
        eps = sorted({r["epsilon"] for r in dp})
        ax.plot(eps, [100 * statistics.fmean(r["accuracy"][-1] for r in dp if r["epsilon"] == e) for e in eps],
                f"C{i}-o", label=f"n = {size}, client-level DP")
    start = [r["accuracy"][0] for r in result["runs"]]
    ax.axhline(100 * statistics.fmean(start), color="grey", ls=":", lw=1, label="round 0")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"client-level ε (δ = {DELTA:g}), whole run, amplified by Poisson sampling")
    ax.set_ylabel("final global held-out pass@1, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--per-round", default="10,30", help="expected clients a round, one per size")
    ap.add_argument("--eps", default="inf,16,8,4,2")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clip", type=float, default=1.0, help="federation.delta_clip C")
    ap.add_argument("--lr", type=float, default=0.006, help="grpo.lr (local)")
    ap.add_argument("--accountant", choices=("rdp", "prv"), default="rdp")
    ap.add_argument("--audit", default="", metavar="N:EPS", help="also run the canary audit at this setting")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="client_level_scale")
    args = ap.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",")]
    args.per_round = [int(x) for x in args.per_round.split(",")]
    if len(args.sizes) != len(args.per_round) or args.rounds < 1:
        ap.error("--per-round needs one count per size; --rounds >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    targets = [float(x) for x in args.eps.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    out = args.out or (Path(tempfile.gettempdir()) / "secure_fgrpo_cl_quick" if args.quick else RESULTS)
    command = shlex.join([os.path.relpath(sys.executable, REPO), os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    load0, t0 = list(os.getloadavg()), time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="clscale-") as root:
        for size, k in zip(args.sizes, args.per_round, strict=False):
            for eps in targets:
                for seed in seeds:
                    runs.append(run_unit(size, k, eps, seed, args, Path(root)))
                    r = runs[-1]
                    log.info("n=%d ε=%s seed %d: accuracy %s, ε %.2f (roster %.2f), z %.3g, median |Δ| %s (%.0f s)",
                             size, _eps(eps), seed, [round(a, 3) for a in r["accuracy"]], r["epsilon_spent"],
                             r["epsilon_roster_known"], r["noise_multiplier"], r["median_delta_norm"], r["wall_s"])
    audit = run_audit(args.audit, args) if args.audit else None
    from secure_fgrpo.federation.datasets import build_data

    cfg = unit_config(args.sizes[0], args.per_round[0], math.inf, args, seeds[0])
    result = {"command": command,
              "settings": {"sizes": args.sizes, "per_round": args.per_round, "targets": [_eps(e) for e in targets],
                           "seeds": seeds, "rounds": args.rounds, "clip": args.clip, "lr": args.lr,
                           "accountant": args.accountant, "quick": args.quick,
                           "global_eval": build_data(cfg).describe_global_eval()},
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "loadavg_start": load0,
                          "loadavg_end": list(os.getloadavg())},
              "total_wall_s": time.perf_counter() - t0, "runs": runs, "audit": audit}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1, default=str))
    write_markdown(out / f"{args.name}.md", result)
    write_plot(out / f"{args.name}.png", result)
    log.info("wrote %s/%s.{json,md,png}", out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
