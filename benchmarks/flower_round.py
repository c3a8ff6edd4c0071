"""A demo-size round over Flower against the in-process round, split into training, secure-sum
compute and transport waiting, with the bytes of every stage on the wire, under three SuperNode
settings: Flower's defaults, the settings the README runs (SuperExec task poll 0.1 s), and the
same with the SuperNode's hard-coded sleeps capped (benchmark only: supernode_idle_cap.py).

Training does not run over Flower yet (it comes with the party refactor), so the Flower round is
the masked secure sum of the demo's adapter vector (FFA-LoRA r=16: 98,305 parameters + the
weight) among the demo's 4 institutions; the training column is the in-process demo round's,
measured here with ``secure-fgrpo demo --secure-sum masked --rounds 1``.

    .venv/bin/python benchmarks/flower_round.py [--dim 98306] [--nodes 4] [--configs default tuned capped]

Writes benchmarks/results/flower_round.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from flower_stage import clientapp_start, flower_overhead, in_process

from secure_fgrpo.deploy.loopback import LoopbackFederation
from secure_fgrpo.flower.synthetic import synthetic_input
from secure_fgrpo.report import client_rows
from secure_fgrpo.secure_sum import SumSpec

RESULTS = Path(__file__).parent / "results"
SHIM = Path(__file__).parent / "supernode_idle_cap.py"
log = logging.getLogger("flower_round")

# SuperExec task poll (s, FLWR_SUPEREXEC_TASK_POLL_INTERVAL) and the SuperNode's sleep cap (s).
CONFIGS: dict[str, dict] = {
    "default": {"task_poll": 1.0, "idle_cap": None, "what": "Flower's defaults (task poll 1 s, idle sleep 3 s)"},
    "tuned": {"task_poll": 0.1, "idle_cap": None, "what": "as the README runs it (task poll 0.1 s)"},
    "capped": {"task_poll": 0.1, "idle_cap": 0.2, "what": "tuned + SuperNode sleeps capped at 0.2 s (shim)"},
}


def demo_round() -> dict:
    """One in-process demo round (masked), timed; each institution's local training time is
    the ``seconds`` its metrics row records."""
    with tempfile.TemporaryDirectory(prefix="flower_round_demo") as tmp:
        t = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "secure-fgrpo"), "demo", "--secure-sum", "masked",
                        "--rounds", "1", "--out", str(Path(tmp) / "run")], check=True, timeout=1800,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        train = {name: rows[-1]["seconds"] for name, rows in client_rows(Path(tmp) / "run").items() if rows}
    return {"wall_s": wall, "train_s": train}


def flower_round(name: str, dim: int, nodes: int) -> dict:
    cfg = CONFIGS[name]
    names = [f"hosp-{chr(97 + i)}" for i in range(nodes)]
    threshold = max(2, nodes - 1)
    if cfg["idle_cap"] is not None:
        os.environ["SFG_BENCH_IDLE_CAP"] = str(cfg["idle_cap"])
    with tempfile.TemporaryDirectory(prefix="flower_round") as tmp:
        fed = LoopbackFederation(Path(tmp), names, poll=cfg["task_poll"],
                                 supernode_cmd=[sys.executable, str(SHIM)] if cfg["idle_cap"] is not None else [])
        try:
            fed.start_all()
            out = Path(tmp) / "out"
            t = time.perf_counter()
            fed.run_app({"rounds": 1, "dim": dim, "threshold": threshold, "out-dir": str(out),
                         "min-nodes": nodes, "stage-timeout": 300.0, "connect-timeout": 300.0})
            rows: list[dict] = []
            end = time.monotonic() + 1200
            while time.monotonic() < end and not rows:
                time.sleep(0.5)
                if (out / "rounds.jsonl").exists():
                    rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines() if x.strip()]
            if not rows:
                raise RuntimeError(f"{name}: the round did not finish within 1200 s")
            wall = time.perf_counter() - t
            row = rows[0]
            assert not row["aborted"] and row["contributors"] == names, row
            spec = SumSpec(1, dim, 1.0, 1.0, tuple(names), threshold, 0)
            seeds = {n: i for i, n in enumerate(names)}
            exact = np.sum([synthetic_input(seeds[n], spec) for n in names], axis=0)
            row["max_abs_error"] = float(np.max(np.abs(np.asarray(row.pop("total")) - exact)))
            local = in_process(spec, fed.roster, {n: fed.state_dir(n) for n in names}, seeds)
        finally:
            fed.stop()
            os.environ.pop("SFG_BENCH_IDLE_CAP", None)
    return {"config": name, "dim": dim, "nodes": nodes, "row": row, "in_process": local, "run_wall_s": wall}


def _stage_table(res: dict, overhead: int) -> list[str]:
    lines = ["| stage | Flower s | secure-sum compute s (in-process, all parties) | transport + waiting s | "
             "payload bytes server→nodes | payload bytes nodes→server | Flower messages |",
             "|---|---|---|---|---|---|---|"]
    for stage, st in res["row"]["stages"].items():
        comp = res["in_process"].get(stage, {}).get("seconds", 0.0)
        msgs = st["replies"] + len(st["missed"]) + len(st["withdrew"])
        lines.append(f"| {stage} | {st['seconds']:.2f} | {comp:.3f} | {st['seconds'] - comp:.2f} | "
                     f"{st['bytes_out']} | {st['bytes_in']} | {2 * msgs} (+{2 * msgs * overhead} B) |")
    return lines


def markdown(doc: dict) -> str:
    demo = doc["demo_round"]
    train = demo["train_s"]
    lines = [f"`{doc['command']}`", "",
             f"flwr {doc['flwr']}, SuperLink + {doc['nodes']} SuperNodes on loopback (TLS, node auth), dim "
             f"{doc['dim']}; load average before/after {doc['load_before'][0]:.1f}/{doc['load_after'][0]:.1f} on "
             f"{os.cpu_count()} cores (shared: absolute seconds are inflated, compare rows). ClientApp process start "
             f"(imports only) {statistics.median(doc['clientapp_start_s']):.2f} s median; Flower adds "
             f"{doc['flower_overhead_bytes']} B of content objects per message (plus metadata, HTTP, TLS).", "",
             "**The round, whole** (training over Flower is not merged: the Flower rows' training column is the "
             "in-process figure, per institution in parallel, i.e. the slowest institution)", "",
             "| round | training s | secure-sum compute s | transport + waiting s | wall s |", "|---|---|---|---|---|"]
    ip_sum = sum(s["seconds"] for s in doc["results"][0]["in_process"].values()) if doc["results"] else 0.0
    lines.append(f"| in-process demo round (2 workers, masked) | {sum(train.values()):.1f} (sum over "
                 f"{len(train)} institutions) | {ip_sum:.3f} | 0 | {demo['wall_s']:.1f} (incl. model load, eval) |")
    for res in doc["results"]:
        flower_s = sum(s["seconds"] for s in res["row"]["stages"].values())
        comp = sum(s["seconds"] for s in res["in_process"].values())
        lines.append(f"| Flower, {res['config']}: {CONFIGS[res['config']]['what']} | {max(train.values()):.1f} "
                     f"(not measured over Flower) | {comp:.3f} | {flower_s - comp:.1f} | "
                     f"{max(train.values()) + flower_s:.1f} (secure sum {flower_s:.1f}) |")
    for res in doc["results"]:
        lines += ["", f"**Per stage, {res['config']}** ({CONFIGS[res['config']]['what']}; max |Flower sum − exact| = "
                  f"{res['row']['max_abs_error']:.3g})", ""]
        lines += _stage_table(res, doc["flower_overhead_bytes"])
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=98306)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", default=str(RESULTS / "flower_round"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import flwr

    doc = {"command": "python " + " ".join(sys.argv), "flwr": getattr(flwr, "__version__", "?"),
           "nodes": args.nodes, "dim": args.dim, "load_before": os.getloadavg(),
           "clientapp_start_s": clientapp_start(), "flower_overhead_bytes": flower_overhead(),
           "demo_round": demo_round(), "results": []}
    for name in args.configs:
        log.info("config %s", name)
        doc["results"].append(flower_round(name, args.dim, args.nodes))
    doc["load_after"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(doc))
    log.info("wrote %s.{json,md}", out)


if __name__ == "__main__":
    main()
