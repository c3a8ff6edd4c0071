"""Heterogeneity benchmark: does FGRPO's relative-gain weighting beat FedAvg, uniform weights and
a naive absolute-improvement weighting where the paper says it should? (issue 16, item 2)

Four settings, each a readable config in benchmarks/configs/hetero_*.toml: divergent reward
scales (0/1, 0/100, partial credit), an easy client beside hard ones, quantity skew (one client
with 10x the data) and a client with corrupted answers. Every strategy of STRATEGIES runs on
every setting and seed; only federation.strategy and gain.* change between them.

    .venv/bin/python benchmarks/heterogeneity.py                       # 4 settings x 8 strategies x seeds 0,1,2
    .venv/bin/python benchmarks/heterogeneity.py --settings scales --seeds 0 --strategies fgrpo-z-t1,naive
    .venv/bin/python benchmarks/heterogeneity.py --make-data           # (re)write benchmarks/configs/data/*.jsonl
    .venv/bin/python benchmarks/heterogeneity.py --replot              # tables and plots from the units file

Each finished unit (setting, strategy, seed) is appended to results/heterogeneity_units.jsonl
at once, and a rerun skips the units already there: an interrupted run loses at most the units
in flight. Accuracy: the global held-out pass@1 (the run's global_metrics); weights, gains and
rewards: each client's own metrics.jsonl (the benchmark operator plays every party). Where every
client's data set has the same size, FedAvg's e_i = n_i is the same for all and its run equals
uniform's: it is then not run, and the table says "= uniform". Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import random
import shlex
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from heterogeneity_report import write_outputs

from secure_fgrpo.config import RunConfig, config_from_dict, load_config
from secure_fgrpo.configio import set_dotted, to_dict
from secure_fgrpo.federation.datasets import build_data
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.model.load import resolve_model_path
from secure_fgrpo.report import client_rows
from secure_fgrpo.tasks import get_family, sample_in_space

log = logging.getLogger("heterogeneity")
REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "benchmarks" / "configs"
RESULTS = REPO / "benchmarks" / "results"
SETTINGS = ("scales", "easy_hard", "quantity", "corrupted")
# name -> (label, overrides on the setting's config)
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "fgrpo-z-t1": ("FGRPO zscore τ=1", {"federation.strategy": "fgrpo", "gain.kind": "zscore", "gain.tau": 1.0}),
    "fgrpo-z-t0.25": ("FGRPO zscore τ=0.25", {"federation.strategy": "fgrpo", "gain.kind": "zscore",
                                              "gain.tau": 0.25}),
    "fgrpo-ratio-t1": ("FGRPO ratio τ=1", {"federation.strategy": "fgrpo", "gain.kind": "ratio", "gain.tau": 1.0}),
    "fgrpo-ratio-t0.25": ("FGRPO ratio τ=0.25", {"federation.strategy": "fgrpo", "gain.kind": "ratio",
                                                 "gain.tau": 0.25}),
    "fgrpo-z-t0.25-global": ("FGRPO zscore τ=0.25, gain.source=global",
                             {"federation.strategy": "fgrpo", "gain.kind": "zscore", "gain.tau": 0.25,
                              "gain.source": "global"}),
    "fedavg": ("FedAvg (n_i = data set size)", {"federation.strategy": "fedavg"}),
    "uniform": ("uniform", {"federation.strategy": "uniform"}),
    "naive": ("naive raw-gain weights τ=1", {"federation.strategy": "naive_gain", "gain.tau": 1.0}),
}
# The data files of the settings whose clients bring their own (written by --make-data, seed 0).
DATA_FILES = {"quantity_big.jsonl": (("unit", "choice"), 1200, "train", False),
              "quantity_big_eval.jsonl": (("unit", "choice"), 30, "held_out", False),
              "corrupted_train.jsonl": (("unit", "dose"), 120, "train", True),
              "corrupted_eval.jsonl": (("unit", "dose"), 30, "held_out", False)}


def make_data(folder: Path, seed: int = 0) -> list[Path]:
    """The JSONL files the quantity and corrupted settings read. A corrupted row's answer is one
    of its family's plausible slips (tasks/base.py), so it is well formed and scores as right."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (families, size, space, corrupt) in DATA_FILES.items():
        rng = random.Random(f"{seed}-{name}")
        rows: list[dict[str, str]] = []
        seen: set[str] = set()
        for _ in range(50 * size):  # distinct prompts; a family's space is finite
            if len(rows) == size:
                break
            fam = get_family(families[len(rows) % len(families)])
            p = sample_in_space(fam, rng, space)  # type: ignore[arg-type]
            if p.prompt in seen:
                continue
            seen.add(p.prompt)
            slips = [s for s in fam.slips(p) if s != p.answer]
            answer = rng.choice(slips) if corrupt and slips else p.answer
            rows.append({"prompt": p.prompt, "answer": answer, "kind": p.family})
        if len(rows) < size:
            raise ValueError(f"{name}: only {len(rows)} distinct prompts of {families}, wanted {size}")
        path = folder / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out.append(path)
    return out


def setting_config(setting: str, strategy: str, seed: int) -> RunConfig:
    """The setting's config file with the strategy's overrides and the seed."""
    raw = to_dict(load_config(CONFIGS / f"hetero_{setting}.toml"))  # data paths resolved
    for dotted, value in {**STRATEGIES[strategy][1], "seed": seed}.items():
        set_dotted(raw, dotted, value)
    return config_from_dict(raw)


def _quiet_worker() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def run_unit(setting: str, strategy: str, seed: int, root: str) -> dict[str, Any]:
    """One federated run; returns the global accuracy curve and each client's own metrics."""
    _quiet_worker()
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = setting_config(setting, strategy, seed)
    run_dir = Path(root) / f"{setting}-{strategy}-{seed}"
    rows = Federation(cfg, run_dir).run().rounds
    keys = ("weight", "gain", "count", "mean_reward", "eval_accuracy_of_global", "groups")
    clients = {n: {k: [r.get(k) for r in crows] for k in keys} for n, crows in client_rows(run_dir).items()}
    return {"setting": setting, "strategy": strategy, "seed": seed,
            "accuracy": [r["global_accuracy"] for r in rows], "clients": clients,
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "loadavg_at_end": list(os.getloadavg())}


def equal_sizes(setting: str) -> bool:
    """Whether every client's training set has the same size (FedAvg's run then equals uniform's)."""
    data = build_data(setting_config(setting, "fedavg", 0))
    return len({len(c.train) for c in data.clients.values()}) == 1


def read_units(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _csv(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [x for x in text.split(",") if x]
    bad = sorted(set(items) - set(allowed))
    if bad or not items:
        raise SystemExit(f"--{what}: unknown {bad or 'empty'}; choose from {','.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=2, help="units run in parallel (one core each)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--make-data", action="store_true", help="write benchmarks/configs/data/*.jsonl and stop")
    ap.add_argument("--replot", action="store_true", help="only rewrite tables and plots from the units file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.make_data:
        for p in make_data(CONFIGS / "data"):
            log.info("wrote %s", p)
        return 0
    settings = _csv(args.settings, SETTINGS, "settings")
    strategies = _csv(args.strategies, tuple(STRATEGIES), "strategies")
    seeds = [int(x) for x in args.seeds.split(",") if x]
    args.out.mkdir(parents=True, exist_ok=True)
    units_path = args.out / "heterogeneity_units.jsonl"
    meta_path = args.out / "heterogeneity_meta.json"
    if not args.replot:
        done = {(u["setting"], u["strategy"], u["seed"]) for u in read_units(units_path)}
        same = {s: equal_sizes(s) for s in settings}
        todo = [(s, st, seed) for seed in seeds for s in settings for st in strategies
                if (s, st, seed) not in done and not (st == "fedavg" and same[s])]
        cfg = setting_config(settings[0], strategies[0], seeds[0])
        resolve_model_path(cfg.model.path, cfg.model.embedded)  # build/cache the model once, before the workers
        command = shlex.join([os.path.relpath(sys.executable, REPO), os.path.relpath(sys.argv[0], REPO),
                              *sys.argv[1:]])
        before = json.loads(meta_path.read_text()) if meta_path.exists() and done else {}
        meta = {"commands": [*before.get("commands", []), command], "equal_sizes": {**before.get("equal_sizes", {}), **same}, "labels": {k: v[0] for k, v in STRATEGIES.items()},
                "overrides": {k: v[1] for k, v in STRATEGIES.items()},
                "configs": {**before.get("configs", {}), **{s: f"benchmarks/configs/hetero_{s}.toml" for s in settings}},
                "global_eval": {**before.get("global_eval", {}),
                                **{s: build_data(setting_config(s, "uniform", 0)).describe_global_eval()
                                   .replace(f"{REPO}/", "") for s in settings}},
                "machine": {"platform": platform.platform(), "python": platform.python_version(),
                            "torch": torch.__version__, "cpu_count": os.cpu_count(),
                            "loadavg_start": list(os.getloadavg())},
                "workers": args.workers, "seeds": seeds}
        log.info("%d units to run (%d already in %s)", len(todo), len(done), units_path)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="hetero-") as root, ProcessPoolExecutor(
                args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_unit, *u, root): u for u in todo}
            for fut in as_completed(futures):
                r = fut.result()
                with units_path.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
                log.info("%s %s seed %d: accuracy %s (%.0f s, load %.2f)", r["setting"], r["strategy"], r["seed"],
                         " ".join(f"{a:.3f}" for a in r["accuracy"]), r["wall_s"], r["loadavg_at_end"][0])
        meta["machine"]["loadavg_end"] = list(os.getloadavg())
        meta["this_invocation_wall_s"] = time.perf_counter() - t0
        meta_path.write_text(json.dumps(meta, indent=1))
    meta = json.loads(meta_path.read_text())
    meta["global_eval"] = {k: v.replace(f"{REPO}/", "") for k, v in meta.get("global_eval", {}).items()}
    write_outputs(args.out, read_units(units_path), meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
