"""Read a run directory back: the accuracy table and the PNG plot the CLI shows."""

from __future__ import annotations

from pathlib import Path

from .federation.store import FINAL_EVAL, JsonlLog, read_json
from .runfolder import save_config


def global_rows(run_dir: Path) -> list[dict]:
    """Written by whoever holds the global model (the server, or the clients when server-blind)."""
    return JsonlLog(Path(run_dir) / "global_metrics.jsonl").rows()


def client_rows(run_dir: Path) -> dict[str, list[dict]]:
    root = Path(run_dir) / "clients"
    if not root.exists():
        return {}
    return {p.name: JsonlLog(p / "metrics.jsonl").rows() for p in sorted(root.iterdir()) if p.is_dir()}


def server_rows(run_dir: Path) -> list[dict]:
    """The server's per-round rows (aggregates only): which rounds aborted, and why."""
    return JsonlLog(Path(run_dir) / "server" / "metrics.jsonl").rows()


def accuracy_curves(run_dir: Path) -> tuple[dict[int, float], dict[str, dict[int, float]]]:
    """Global held-out accuracy by round, and each client's held-out accuracy of the global
    adapter it received (measured at the start of round r, i.e. the global after r-1), through
    the last round (``final_eval.json``, measured when the run ended)."""
    glob = {r["round"]: r["global_accuracy"] for r in global_rows(run_dir)}
    per = {name: {r["round"] - 1: r["eval_accuracy_of_global"] for r in rows}
           for name, rows in client_rows(run_dir).items()}
    last = max(glob, default=0)
    for name, curve in per.items():
        final = Path(run_dir) / "clients" / name / FINAL_EVAL
        if final.is_file():
            row = read_json(final)
            if row.get("after_round") == last:  # a stale one (from before a resume) is ignored
                curve[last] = row["eval_accuracy_of_global"]
    return glob, per


def plot_accuracy(run_dir: Path, out: Path | None = None) -> Path:
    import matplotlib.pyplot as plt

    out = out or Path(run_dir) / "accuracy.png"
    fig = accuracy_figure(run_dir)
    fig.savefig(out)
    plt.close(fig)
    return out


def accuracy_figure(run_dir: Path):
    """Whole rounds on the x axis, aborted rounds shaded (nothing was applied in them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    glob, per = accuracy_curves(run_dir)
    aborted = sorted(r["round"] for r in server_rows(run_dir) if r.get("aborted"))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, r in enumerate(aborted):  # nothing was applied: the adapter after r is the one after r-1
        ax.axvspan(r - 0.4, r + 0.4, color="tab:red", alpha=0.15, lw=0, label="aborted round" if i == 0 else None)
    ax.plot(sorted(glob), [glob[r] for r in sorted(glob)], "k-o", lw=2.5, label="global (public held-out)")
    for name, curve in per.items():
        rs = sorted(curve)
        ax.plot(rs, [curve[r] for r in rs], "--", marker=".", label=f"{name} (own held-out)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round (global adapter after round)")
    ax.set_ylabel("sampled pass@1 (T = 1)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"secure_fgrpo: {Path(run_dir).name}")
    fig.tight_layout()
    return fig


def save_run_config(run_dir: Path, raw: dict) -> None:
    save_config(run_dir, raw)


def load_run_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a secure_fgrpo run directory (no config.json)")
    return read_json(path)
