"""Tables, verdicts and plots of the heterogeneity benchmark (benchmarks/heterogeneity.py),
from its units file: one row per (setting, strategy, seed) run.

A strategy "beats" another in a setting when its mean gain over round 0 exceeds the other's by
more than the seed spread (the larger of the two sample standard deviations over seeds); the
paired difference (same seed: same data, same round 0) is printed beside it."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

FGRPO_PREFIX = "fgrpo"
BASELINES = ("fedavg", "naive", "uniform")
SETTING_TITLES = {"scales": "(a) divergent reward scales (0/1, 0/100, partial credit)",
                  "easy_hard": "(b) an easy client beside harder ones",
                  "quantity": "(c) quantity skew (one client with 10x the data)",
                  "corrupted": "(d) a client with corrupted answers"}


def _spread(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs), "n": len(xs)}


def _shares(unit: dict[str, Any]) -> dict[str, list[float]]:
    """Each client's share e_i / Σe_j of every round's weight."""
    names = sorted(unit["clients"])
    rounds = len(unit["clients"][names[0]]["weight"])
    totals = [sum(unit["clients"][n]["weight"][r] for n in names) for r in range(rounds)]
    return {n: [unit["clients"][n]["weight"][r] / totals[r] for r in range(rounds)] for n in names}


def summarise(units: list[dict[str, Any]], equal_sizes: dict[str, bool]) -> dict[str, dict[str, Any]]:
    """Per setting and strategy: gain over round 0 (final and mean over rounds 1..R), and each
    client's weight share per round, over seeds."""
    out: dict[str, dict[str, Any]] = {}
    for setting in sorted({u["setting"] for u in units}):
        mine = [u for u in units if u["setting"] == setting]
        if equal_sizes.get(setting):  # FedAvg's e_i = n_i is equal for all: its run is uniform's
            mine += [{**u, "strategy": "fedavg", "same_as": "uniform"} for u in mine if u["strategy"] == "uniform"]
        out[setting] = {}
        for strategy in sorted({u["strategy"] for u in mine}):
            runs = sorted((u for u in mine if u["strategy"] == strategy), key=lambda u: u["seed"])
            curves = [u["accuracy"] for u in runs]
            shares = [_shares(u) for u in runs]
            names = sorted(shares[0])
            out[setting][strategy] = {
                "seeds": [u["seed"] for u in runs], "same_as": runs[0].get("same_as"),
                "final_gain": _spread([c[-1] - c[0] for c in curves]),
                "mean_gain": _spread([statistics.fmean(c[1:]) - c[0] for c in curves]),
                "final": _spread([c[-1] for c in curves]), "round0": _spread([c[0] for c in curves]),
                "gain_by_seed": {u["seed"]: u["accuracy"][-1] - u["accuracy"][0] for u in runs},
                "curve_mean": [statistics.fmean(v) for v in zip(*curves, strict=False)],
                "share_mean": {n: [statistics.fmean(v) for v in zip(*(s[n] for s in shares), strict=False)] for n in names},
                "share_min": {n: [min(v) for v in zip(*(s[n] for s in shares), strict=False)] for n in names},
                "share_max": {n: [max(v) for v in zip(*(s[n] for s in shares), strict=False)] for n in names},
                "gain_mean": {n: [statistics.fmean(v) for v in zip(*(u["clients"][n]["gain"] for u in runs), strict=False)]
                              for n in names},
                "reward_mean": {n: [statistics.fmean(v) for v in zip(*(u["clients"][n]["mean_reward"] for u in runs), strict=False)]
                                for n in names},
                "wall_s": statistics.fmean(u["wall_s"] for u in runs),
            }
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """a's final gain against b's: the difference of means, the seed spread, the paired difference."""
    fa, fb = a["final_gain"], b["final_gain"]
    spread = max(fa["std"], fb["std"])
    paired = [a["gain_by_seed"][s] - b["gain_by_seed"][s] for s in a["gain_by_seed"] if s in b["gain_by_seed"]]
    diff = fa["mean"] - fb["mean"]
    return {"diff": diff, "spread": spread, "beats": diff > spread and fa["n"] > 1,
            "loses": -diff > spread and fa["n"] > 1,
            "paired": _spread(paired) if paired else None}


def verdict(setting: dict[str, Any]) -> list[str]:
    """One line per FGRPO variant: against FedAvg and the naive weighting, beats / within spread / loses."""
    lines = []
    for name in sorted(s for s in setting if s.startswith(FGRPO_PREFIX)):
        parts = []
        for base in ("fedavg", "naive"):
            if base not in setting:
                continue
            c = compare(setting[name], setting[base])
            word = "BEATS" if c["beats"] else ("LOSES TO" if c["loses"] else "within the seed spread of")
            p = c["paired"]
            paired = f"; paired {100 * p['mean']:+.1f} ± {100 * p['std']:.1f}" if p else ""
            parts.append(f"{word} {base} ({100 * c['diff']:+.1f} points vs spread {100 * c['spread']:.1f}{paired})")
        lines.append(f"{name}: " + "; ".join(parts))
    return lines


def _pm(d: dict[str, float]) -> str:
    return f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f}"


def write_markdown(path: Path, summary: dict[str, Any], meta: dict[str, Any]) -> None:
    labels = meta["labels"]
    lines = ["# Heterogeneity: FGRPO vs FedAvg, uniform and naive raw-gain weights", "",
             *(f"    {c}" for c in meta.get("commands", [meta.get("command", "")])), "",
             ("Accuracy: global held-out pass@1 (T = 1), in points; **gain** = accuracy after the last round minus "
             "round 0 (the same base model and held-out samples for every strategy of a seed); mean ± sample std "
             "over seeds; **paired** = the same difference taken seed by seed. A strategy *beats* another when "
             "the difference of mean gains exceeds the larger seed std. Weight share: e_i / Σe_j per round, "
             "from each client's own metrics.jsonl, mean over seeds (round 1: every gain is 0)."), ""]
    notes = path.with_name(f"{path.stem}_verdict.md")  # the verdict read by hand, kept beside the table
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    for setting in [s for s in SETTING_TITLES if s in summary]:
        rows = summary[setting]
        lines += [f"## {SETTING_TITLES.get(setting, setting)}", "",
                  (f"Config: `{meta['configs'].get(setting, '')}`. Global held-out set: "
                  f"{meta['global_eval'].get(setting, '?')}."), "",
                  ("| strategy | seeds | gain (final − round 0) | mean gain over rounds 1..R | final accuracy | "
                  "weight share rounds 2..R (per client) | wall s/run |"), "|---|---|---|---|---|---|---|"]
        for name in sorted(rows, key=lambda s: (not s.startswith(FGRPO_PREFIX), s)):
            d = rows[name]
            shares = ", ".join(f"{n} {statistics.fmean(v[1:]) if len(v) > 1 else v[0]:.2f}"
                               for n, v in d["share_mean"].items())
            label = labels.get(name, name) + (f" (= {d['same_as']}: equal data sizes)" if d["same_as"] else "")
            lines.append(f"| {label} | {len(d['seeds'])} | {_pm(d['final_gain'])} | {_pm(d['mean_gain'])} | "
                         f"{100 * d['final']['mean']:.1f} | {shares} | {d['wall_s']:.0f} |")
        lines += ["", ("Each client's gain g_i by round (mean over seeds; the train source unless the strategy "
                  "says global) and its mean training reward, in its own units:"), ""]
        for name in sorted(s for s in rows if s.startswith(FGRPO_PREFIX) or s == "naive"):
            d = rows[name]
            per = "; ".join(f"{n} g " + " ".join(f"{g:+.2f}" for g in d["gain_mean"][n]) + " / r "
                            + " ".join(f"{r:.2f}" for r in d["reward_mean"][n]) for n in d["gain_mean"])
            lines.append(f"- {name}: {per}")
        lines += ["", "Verdict (automatic, from the rule above):", ""]
        lines += [f"- {v}" for v in verdict(rows)]
        lines += ["", f"![weights]({path.stem}_{setting}_weights.png)", ""]
    m = meta["machine"]
    lines += [(f"Machine: {m['platform']}, {m['cpu_count']} CPUs shared with other jobs; load average "
              f"{m['loadavg_start'][0]:.2f} at start, {m.get('loadavg_end', [float('nan')])[0]:.2f} at end; "
              f"{meta['workers']} units in parallel, 1 thread each. Raw numbers: {path.stem}.json and "
              f"{path.stem}_units.jsonl."), ""]
    path.write_text("\n".join(lines))


def write_plots(out: Path, summary: dict[str, Any], meta: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, len(summary), figsize=(4.2 * len(summary), 4.2), dpi=110, squeeze=False)
    for ax, (setting, rows) in zip(axes[0], summary.items(), strict=False):
        names = sorted(rows, key=lambda s: (not s.startswith(FGRPO_PREFIX), s))
        means = [100 * rows[n]["final_gain"]["mean"] for n in names]
        errs = [100 * rows[n]["final_gain"]["std"] for n in names]
        ax.bar(range(len(names)), means, yerr=errs, capsize=3,
               color=["C0" if n.startswith(FGRPO_PREFIX) else "C1" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(setting)
        ax.set_ylabel("gain over round 0, points (mean ± std)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths.append(out / "heterogeneity.png")
    fig.savefig(paths[-1])
    plt.close(fig)
    for setting, rows in summary.items():
        names = sorted(rows, key=lambda s: (not s.startswith(FGRPO_PREFIX), s))
        cols = 4
        fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(3.4 * cols, 2.8 * ((len(names) + cols - 1) // cols)),
                                 dpi=110, squeeze=False, sharey=True)
        for ax, name in zip(axes.flat, names, strict=False):
            d = rows[name]
            for i, (client, share) in enumerate(d["share_mean"].items()):
                xs = list(range(1, len(share) + 1))
                ax.plot(xs, share, f"C{i}-o", ms=3, label=client)
                ax.fill_between(xs, d["share_min"][client], d["share_max"][client], color=f"C{i}", alpha=0.15)
            ax.set_title(meta["labels"].get(name, name), fontsize=8)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.set_xlabel("round", fontsize=8)
            ax.xaxis.get_major_locator().set_params(integer=True)
        for ax in axes.flat[len(names):]:
            ax.axis("off")
        axes[0][0].set_ylabel("weight share e_i/Σe")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{SETTING_TITLES.get(setting, setting)}: per-client weight share (mean, min–max over seeds)",
                     fontsize=9)
        fig.tight_layout()
        paths.append(out / f"heterogeneity_{setting}_weights.png")
        fig.savefig(paths[-1])
        plt.close(fig)
    return paths


def write_outputs(out: Path, units: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    summary = summarise(units, meta.get("equal_sizes", {}))
    verdicts = {s: verdict(rows) for s, rows in summary.items()}
    (out / "heterogeneity.json").write_text(json.dumps({**meta, "summary": summary, "verdicts": verdicts}, indent=1))
    write_markdown(out / "heterogeneity.md", summary, meta)
    write_plots(out, summary, meta)
