"""The report's figures as base64 PNG strings (matplotlib, Agg): no files, no network."""

from __future__ import annotations

import base64
import io
from collections import defaultdict

import numpy as np


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float = 6.0, h: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def bytes_by_stage(rows: list[dict]) -> str:
    """Stacked bars: bytes the server received per round, by stage."""
    fig, ax = _figure(7.2)
    per: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    rounds = sorted({r["round"] for r in rows})
    for r in rows:
        per[r["stage"]][r["round"]] += r["bytes_total"]
    bottom = np.zeros(len(rounds))
    for stage, by_round in per.items():
        vals = np.array([by_round.get(r, 0) for r in rounds], dtype=float) / 1024
        ax.bar([str(r) for r in rounds], vals, bottom=bottom, label=stage)
        bottom += vals
    ax.set_xlabel("round")
    ax.set_ylabel("KiB received")
    ax.set_title("What the server received, by stage")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside, not over, the bars
    return _png(fig)


def recovery(cosines: list[float], chance: float, baseline: float) -> str:
    fig, ax = _figure()
    ax.plot(range(len(cosines)), cosines, "o", label="cos(estimate from one message, true Δ)")
    ax.axhspan(-chance, chance, color="grey", alpha=0.3, label="chance band")
    ax.axhline(baseline, color="C2", ls="--", label="what the sum alone gives")
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("message")
    ax.set_ylabel("cosine")
    ax.set_title("Update recovery")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def gains(inferred: list[float], true_gain: list[float]) -> str:
    fig, ax = _figure()
    ranks = np.argsort(np.argsort(inferred))
    ax.plot(true_gain, ranks, "o")
    ax.set_xlabel("true gain g_i")
    ax.set_ylabel("rank of the weight read")
    ax.set_title("Gain inference")
    return _png(fig)


def membership(observed: list[float], unobserved: list[float], title: str) -> str:
    fig, ax = _figure()
    lo = min(min(observed), min(unobserved))
    hi = max(max(observed), max(unobserved))
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-9, 40)
    ax.hist(unobserved, bins=bins, alpha=0.6, density=True, label="never planted")
    ax.hist(observed, bins=bins, alpha=0.6, density=True, label="planted canaries")
    ax.set_xlabel("canary statistic")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig)
