"""A round of the federation trained over Flower against the same round in process, split into
training, secure-sum compute and transport waiting, with the bytes of every stage on the wire,
under three SuperNode settings: Flower's defaults, the settings the README runs (SuperExec task
poll 0.1 s), and the same with the SuperNode's hard-coded sleeps capped (benchmark only:
supernode_idle_cap.py).

Each SuperNode is an institution's party: it trains on the global vector stage 0 carries and
reports its own ``train_seconds`` (local GRPO) and ``sum_seconds`` (gain, clip, encoding and its
secure-sum stages); the coordinator records them per node in ``rounds.jsonl``. Training = the
slowest node's ``train_seconds`` (the nodes train in parallel), secure-sum compute = the slowest
node's ``sum_seconds``, transport + waiting = the rest of the stages' wall time. Also the
components of Flower's floor: the ClientApp process start (a new process per message) and the
bytes Flower's object encoding adds per message.

    .venv/bin/python benchmarks/flower_round.py [--config examples/deploy.toml] [--configs default tuned capped]

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
from typing import Any

from secure_fgrpo.config import load_config
from secure_fgrpo.deploy.loopback import APP_DIR, LoopbackFederation
from secure_fgrpo.flower.wire import Envelope
from secure_fgrpo.report import client_rows

RESULTS = Path(__file__).parent / "results"
SHIM = Path(__file__).parent / "supernode_idle_cap.py"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "deploy.toml"
log = logging.getLogger("flower_round")

# SuperExec task poll (s, FLWR_SUPEREXEC_TASK_POLL_INTERVAL) and the SuperNode's sleep cap (s).
CONFIGS: dict[str, dict] = {
    "default": {"task_poll": 1.0, "idle_cap": None, "what": "Flower's defaults (task poll 1 s, idle sleep 3 s)"},
    "tuned": {"task_poll": 0.1, "idle_cap": None, "what": "as the README runs it (task poll 0.1 s)"},
    "capped": {"task_poll": 0.1, "idle_cap": 0.2, "what": "tuned + SuperNode sleeps capped at 0.2 s (shim)"},
}


def flower_overhead() -> int:
    """Bytes Flower's object encoding adds around an empty payload: the deflated objects of one
    message's content (metadata, HTTP and TLS framing not included)."""
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    content = Envelope(1, "masked_input", "masked_input", b"").to_content()
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(content).values())


def clientapp_start(repeat: int = 3) -> list[float]:
    """Wall seconds to start a Python process that imports what a ClientApp process imports."""
    code = "import flwr.supernode.runtime.run_clientapp, sfg_client"
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=APP_DIR, check=True, timeout=120)
        out.append(time.perf_counter() - t)
    return out


def in_process_round(config: Path) -> dict:
    """Round 1 of ``config`` in process (its workers), timed; each institution's local training
    time is the ``seconds`` its metrics row records."""
    from secure_fgrpo.federation.runner import Federation  # the training stack: here only

    with tempfile.TemporaryDirectory(prefix="flower_round_local") as tmp:
        t = time.perf_counter()
        Federation(load_config(config), Path(tmp) / "run").run(1)
        wall = time.perf_counter() - t
        train = {name: rows[-1]["seconds"] for name, rows in client_rows(Path(tmp) / "run").items() if rows}
    return {"wall_s": wall, "train_s": train}


def flower_round(name: str, config: Path) -> dict:
    cfg = CONFIGS[name]
    names = [c.name for c in load_config(config).clients]
    if cfg["idle_cap"] is not None:
        os.environ["SFG_BENCH_IDLE_CAP"] = str(cfg["idle_cap"])
    with tempfile.TemporaryDirectory(prefix="flower_round") as tmp:
        fed = LoopbackFederation(Path(tmp), names, poll=cfg["task_poll"], node_config={"config": str(config)},
                                 supernode_cmd=[sys.executable, str(SHIM)] if cfg["idle_cap"] is not None else [])
        try:
            fed.start_all()
            out = Path(tmp) / "out"
            t = time.perf_counter()
            fed.run_app({"config": str(config), "rounds": 1, "out-dir": str(out), "min-nodes": len(names),
                         "stage-timeout": 300.0, "train-timeout": 1800.0, "connect-timeout": 300.0})
            rows: list[dict] = []
            end = time.monotonic() + 2400
            while time.monotonic() < end and not rows:
                time.sleep(0.5)
                if (out / "rounds.jsonl").exists():
                    rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines() if x.strip()]
            if not rows:
                raise RuntimeError(f"{name}: the round did not finish within 2400 s")
            wall = time.perf_counter() - t
            row = rows[0]
            if row["aborted"] or row["contributors"] != names:
                raise RuntimeError(f"{name}: the round did not complete with every node: {row.get('reason')}")
        finally:
            fed.stop()
            os.environ.pop("SFG_BENCH_IDLE_CAP", None)
    return {"config": name, "nodes": len(names), "row": row, "run_wall_s": wall}


def split(row: dict) -> dict[str, float]:
    """Training, secure-sum compute and transport + waiting of one recorded Flower round."""
    nodes = row["nodes"].values()
    train = max(n["train_seconds"] for n in nodes)
    compute = max(n["sum_seconds"] for n in nodes)
    stages = sum(s["seconds"] for s in row["stages"].values())
    return {"train_s": train, "sum_s": compute, "transport_s": stages - train - compute, "stages_s": stages}


def _stage_table(res: dict, overhead: int) -> list[str]:
    lines = ["| stage | Flower s | payload bytes server→nodes | payload bytes nodes→server | Flower messages |",
             "|---|---|---|---|---|"]
    for stage, st in res["row"]["stages"].items():
        msgs = st["replies"] + len(st["missed"]) + len(st["withdrew"])
        lines.append(f"| {stage} | {st['seconds']:.2f} | {st['bytes_out']} | {st['bytes_in']} | "
                     f"{2 * msgs} (+{2 * msgs * overhead} B) |")
    return lines


def markdown(doc: dict) -> str:
    local = doc["in_process"]
    train = local["train_s"]
    lines = [f"`{doc['command']}`", "",
             f"flwr {doc['flwr']}, SuperLink + {doc['nodes']} SuperNodes on loopback (TLS, node auth), "
             f"federation `{doc['config']}`, round 1; load average before/after {doc['load_before'][0]:.1f}/"
             f"{doc['load_after'][0]:.1f} on {os.cpu_count()} cores (shared: absolute seconds are inflated, compare "
             f"rows). ClientApp process start (imports only) {statistics.median(doc['clientapp_start_s']):.2f} s "
             f"median; Flower adds {doc['flower_overhead_bytes']} B of content objects per message (plus metadata, "
             "HTTP, TLS).", "",
             "**The round, whole** (training: the slowest institution's local GRPO; secure-sum compute: the slowest "
             "institution's gain, clip, encoding and protocol stages; transport + waiting: the rest)", "",
             "| round | training s | secure-sum compute s | transport + waiting s | wall s |", "|---|---|---|---|---|"]
    lines.append(f"| in process (workers, masked) | {max(train.values()):.1f} (slowest of {len(train)}) | – | 0 | "
                 f"{local['wall_s']:.1f} (incl. model load, eval) |")
    for res in doc["results"]:
        s = split(res["row"])
        lines.append(f"| Flower, {res['config']}: {CONFIGS[res['config']]['what']} | {s['train_s']:.1f} | "
                     f"{s['sum_s']:.2f} | {s['transport_s']:.1f} | {res['run_wall_s']:.1f} (stages {s['stages_s']:.1f}) |")
    for res in doc["results"]:
        lines += ["", f"**Per stage, {res['config']}** ({CONFIGS[res['config']]['what']})", ""]
        lines += _stage_table(res, doc["flower_overhead_bytes"])
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=EXAMPLE, help="the federation config (every node holds it)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", default=str(RESULTS / "flower_round"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import flwr

    config = args.config.resolve()
    doc: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "flwr": getattr(flwr, "__version__", "?"),
                           "config": str(args.config), "nodes": len(load_config(config).clients), "load_before": os.getloadavg(),
                           "clientapp_start_s": clientapp_start(), "flower_overhead_bytes": flower_overhead(),
                           "in_process": in_process_round(config), "results": []}
    for name in args.configs:
        log.info("config %s", name)
        doc["results"].append(flower_round(name, config))
    doc["load_after"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(doc))
    log.info("wrote %s.{json,md}", out)


if __name__ == "__main__":
    main()
