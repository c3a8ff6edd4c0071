"""Many-client simulation: a generated population (``[population]``) of 100-1,000 clients with
k sampled a round, through the masked secure sum, on the project's own process pool. Measures
wall time per round and the peak memory of the whole process tree (the driver and its worker
processes, RSS summed, sampled every 0.2 s), so the peak at 1,000 clients can be set against
the peak at 100 with the same k: memory follows the sampled clients, not the population.

    .venv/bin/python benchmarks/many_clients.py                       # 100 and 1,000 clients, k = 50, 2 rounds
    .venv/bin/python benchmarks/many_clients.py --sizes 1000 --per-round 100 --rounds 3
    .venv/bin/python benchmarks/many_clients.py --quick               # the test model, 40 clients: a smoke run

writes NAME.{json,md} (default many_clients) under --out (default benchmarks/results). Each
population runs in its own spawned process (so the peaks do not mix). Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Self

import psutil  # type: ignore[import-untyped]

from secure_fgrpo.config import RunConfig, config_from_dict
from secure_fgrpo.configio import set_dotted

log = logging.getLogger("many_clients")
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
# Tiny local work per client (one GRPO step on a few prompts), so 50-100 clients a round fit a
# loaded 2-core machine; the model is the embedded default (``--quick``: the test suite's).
LOCAL_WORK: dict[str, Any] = {
    "grpo": {"steps": 1, "group_size": 4, "prompts_per_step": 2, "oversample": 4, "lr": 0.006},
    "model": {"lora": {"r": 1}},
    "data": {"partition": "dirichlet", "train_size": 128, "eval_size": 2, "global_eval_size": 50},
}
QUICK_MODEL: dict[str, Any] = {"warm_steps": 40, "clean_steps": 30, "warm_batch": 32, "seed": 1}


def scale_config(size: int, per_round: int, rounds: int, seed: int = 0, sampling: str = "fixed",
                 quick: bool = False, **over: Any) -> RunConfig:
    """A population of ``size`` clients, ``per_round`` sampled a round (the expected count under
    Poisson sampling), masked secure sum, tiny local work; ``over``: dotted overrides."""
    raw: dict[str, Any] = json.loads(json.dumps(LOCAL_WORK))
    raw.update(seed=seed, population={"size": size, "alpha": 0.5, "median_size": 32, "size_sigma": 1.0})
    raw["federation"] = {"rounds": rounds, "fraction": per_round / size, "sampling": sampling, "workers": 2}
    raw["secure_sum"] = {"backend": "masked"}
    if quick:
        raw["model"]["embedded"] = dict(QUICK_MODEL)
        raw["grpo"]["sampling"] = {"max_new_tokens": 6}
        raw["grpo"]["loss"] = {"max_completion_length": 6}
        raw["eval"] = {"max_new_tokens": 6}
        raw["data"]["global_eval_size"] = 16
    for dotted, value in over.items():
        set_dotted(raw, dotted, value)
    return config_from_dict(raw)


class TreeMemory:
    """Peak RSS of this process plus all its descendants, summed, sampled from a thread."""

    def __init__(self, every: float = 0.2) -> None:
        self.peak, self.every = 0, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that just exited
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_population(size: int, per_round: int, rounds: int, sampling: str, quick: bool, root: str) -> dict[str, Any]:
    """One federation in this (spawned) process; returns its timings and memory."""
    import torch
    import transformers

    from secure_fgrpo.federation.runner import Federation

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    cfg = scale_config(size, per_round, rounds, sampling=sampling, quick=quick)
    times: list[float] = []
    train: list[float] = []  # round start -> the last client's local step done (the pool's stage)
    sampled: list[int] = []
    mark = [time.perf_counter(), 0.0]

    def on_event(kind: str, info: dict) -> None:
        if kind == "round_start":
            sampled.append(len(info["participants"]))
            mark[0] = time.perf_counter()
        elif kind == "client_done":
            mark[1] = time.perf_counter() - mark[0]
        elif kind == "round" and info.get("round", 0) > 0:
            times.append(time.perf_counter() - mark[0])
            train.append(mark[1])

    t0 = time.perf_counter()
    with TreeMemory() as mem:
        fed = Federation(cfg, Path(root) / f"pop-{size}", on_event)
        setup_s = time.perf_counter() - t0
        summary = fed.run()
    rows = [json.loads(x) for x in (Path(root) / f"pop-{size}" / "server" / "metrics.jsonl").read_text().splitlines()]
    return {"size": size, "per_round": per_round, "sampling": sampling, "rounds": rounds, "sampled": sampled,
            "contributors": [r["contributors"] for r in rows],
            "accuracy": [r["global_accuracy"] for r in summary.rounds],
            "setup_s": setup_s, "round_s": times, "train_s": train, "wall_s": time.perf_counter() - t0,
            "peak_tree_rss_gib": mem.peak / 2**30, "clients_built": fed.parties.built,
            "clients_held_at_end": len(fed.parties.cached()), "loadavg_at_end": list(os.getloadavg())}


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    lines = ["# Many-client simulation", "", "    " + result["command"], "",
             ("Generated population (`[population]`: Dirichlet α = 0.5 over task families, log-normal sizes), "
             f"`federation.sampling = {result['settings']['sampling']!r}`, masked secure sum, "
             "tiny local work (1 GRPO step, 2 prompts × 4 completions, LoRA r = 1), the project's process pool "
             "(2 single-threaded workers). Peak memory: RSS of the driver and its workers, summed."), "",
             ("| clients | sampled a round | rounds | wall (s) | s / round | setup (s) | peak memory (GiB) "
             "| client objects built | held at end |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        per = sum(r["round_s"]) / max(1, len(r["round_s"]))
        lines.append(f"| {r['size']} | {', '.join(map(str, r['sampled']))} | {r['rounds']} | {r['wall_s']:.0f} | "
                     f"{per:.0f} | {r['setup_s']:.1f} | {r['peak_tree_rss_gib']:.2f} | {r['clients_built']} | "
                     f"{r['clients_held_at_end']} |")
    m = result["machine"]
    lines += ["", (f"Machine: {m['platform']}, {m['cpu_count']} CPUs shared with other jobs; load average "
              f"{m['loadavg_start'][0]:.1f} at start. Raw numbers: {path.stem}.json."), ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=None, help="comma-separated population sizes (default 100,1000)")
    ap.add_argument("--per-round", type=int, default=None, help="clients sampled a round (default 50)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sampling", choices=("fixed", "poisson"), default="fixed")
    ap.add_argument("--quick", action="store_true", help="the test model, 40 clients, 4 a round: a smoke run")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="many_clients")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sizes = [int(x) for x in (args.sizes or ("40" if args.quick else "100,1000")).split(",")]
    per_round = args.per_round or (4 if args.quick else 50)
    if args.rounds < 1 or per_round < 2 or any(s < per_round for s in sizes):
        ap.error("--rounds >= 1, --per-round >= 2 and every size >= --per-round")
    out = args.out or (Path(tempfile.gettempdir()) / "secure_fgrpo_many_quick" if args.quick else RESULTS)
    from secure_fgrpo.model.load import resolve_model_path

    cfg = scale_config(sizes[0], per_round, args.rounds, quick=args.quick)
    resolve_model_path(cfg.model.path, cfg.model.embedded)  # build/cache the model before timing
    command = shlex.join([os.path.relpath(sys.executable, REPO), os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    load0 = list(os.getloadavg())
    runs = []
    with tempfile.TemporaryDirectory(prefix="many-") as root:
        for size in sizes:  # one at a time, each in a fresh process: separate peaks
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as one:
                runs.append(one.submit(run_population, size, per_round, args.rounds, args.sampling, args.quick,
                                       root).result())
            r = runs[-1]
            log.info("%d clients: %.0f s, rounds %s s, peak %.2f GiB", size, r["wall_s"],
                     [round(x) for x in r["round_s"]], r["peak_tree_rss_gib"])
    result = {"command": command, "settings": {"sizes": sizes, "per_round": per_round, "rounds": args.rounds,
                                               "sampling": args.sampling, "quick": args.quick},
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "cpu_count": os.cpu_count(), "loadavg_start": load0, "loadavg_end": list(os.getloadavg())},
              "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    write_markdown(out / f"{args.name}.md", result)
    log.info("wrote %s/%s.{json,md}", out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
