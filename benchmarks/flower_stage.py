"""Stage round trips of the masked secure sum over Flower (SuperLink + SuperNodes as separate
processes on loopback, TLS and node authentication on, started with ``flwr run``) against the
in-process driver, for the same spec and inputs.

Per stage: wall time (server sends -> last reply processed) and payload bytes each way; the
Flower object overhead per message is measured by deflating one real Message. Also the
components of Flower's floor: the ClientApp process start (a new process per message) and the
polls (SuperNode idle sleep 3 s, hard-coded in flwr 1.41; SuperExec task poll, set to 0.1 s
here through FLWR_SUPEREXEC_TASK_POLL_INTERVAL; the ServerApp's pull loop, ours at 0.1 s
instead of Grid.send_and_receive's 3 s).

    .venv/bin/python benchmarks/flower_stage.py [--rounds 2] [--dims 1000 100000] [--nodes 3]

Writes benchmarks/results/flower_stage.{json,md}.
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

from secure_fgrpo.deploy.loopback import APP_DIR, LoopbackFederation
from secure_fgrpo.flower.synthetic import synthetic_input
from secure_fgrpo.flower.wire import Envelope
from secure_fgrpo.secure_sum import SumSpec, make_backend

RESULTS = Path(__file__).parent / "results"
log = logging.getLogger("flower_stage")


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


def in_process(spec: SumSpec, roster: Path, states: dict[str, Path], seeds: dict[str, int]) -> dict:
    """The same round through the in-process state machines, timed and counted per stage."""
    backend = make_backend("masked", {"roster": str(roster)})
    server = backend.server(spec, Path("."))
    clients = {n: backend.client(n, spec, states[n]) for n in spec.participants}
    for n, c in clients.items():
        c.set_input(synthetic_input(seeds[n], spec))
    replies: dict = {}
    stages = {}
    for stage in server.stages:
        t = time.perf_counter()
        bytes_out = sum(len(m.payload) for m in replies.values())
        inbound = {n: m for n, c in clients.items() if (m := c.respond(stage, replies.get(n))) is not None}
        replies = server.process(stage, inbound)
        stages[stage] = {"seconds": time.perf_counter() - t, "bytes_out": bytes_out,
                         "bytes_in": sum(len(m.payload) for m in inbound.values())}
    return stages


def run_dim(dim: int, rounds: int, nodes: int, poll: float) -> dict:
    names = [f"hosp-{chr(97 + i)}" for i in range(nodes)]
    with tempfile.TemporaryDirectory(prefix="flower_stage") as tmp:
        fed = LoopbackFederation(Path(tmp), names, poll=poll)
        try:
            t0 = time.perf_counter()
            fed.start_all()
            startup = time.perf_counter() - t0
            out = Path(tmp) / "out"
            t1 = time.perf_counter()
            fed.run_app({"rounds": rounds, "dim": dim, "threshold": max(2, nodes - 1), "out-dir": str(out),
                         "min-nodes": nodes, "stage-timeout": 300.0, "poll": poll})
            end = time.monotonic() + 900
            rows: list[dict] = []
            while time.monotonic() < end and len(rows) < rounds:
                time.sleep(0.5)
                if (out / "rounds.jsonl").exists():
                    rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines() if x.strip()]
            wall = time.perf_counter() - t1
            if len(rows) < rounds:
                raise RuntimeError(f"only {len(rows)} of {rounds} rounds finished within 900 s")
            seeds = {n: names.index(n) for n in names}
            spec = SumSpec(1, dim, 1.0, 1.0, tuple(names), max(2, nodes - 1), 0)
            local = in_process(spec, fed.roster, {n: fed.state_dir(n) for n in names}, seeds)
            for row in rows:
                assert not row["aborted"] and row["contributors"] == names, row
                exact = np.sum([synthetic_input(seeds[n], SumSpec(row["round"], dim, 1.0, 1.0, tuple(names),
                                                                    max(2, nodes - 1), 0)) for n in names], axis=0)
                row["max_abs_error"] = float(np.max(np.abs(np.asarray(row.pop("total")) - exact)))
        finally:
            fed.stop()
    return {"dim": dim, "nodes": nodes, "rounds": rows, "in_process": local, "startup_s": startup,
            "run_wall_s": wall}


def markdown(doc: dict) -> str:
    lines = [f"`{doc['command']}`", "",
             f"flwr {doc['flwr']}, {doc['nodes']} SuperNodes + SuperLink on loopback (TLS, node auth), "
             f"load average before/after {doc['load_before'][0]:.1f}/{doc['load_after'][0]:.1f} on "
             f"{os.cpu_count()} cores; ClientApp process start (imports only) "
             f"{statistics.median(doc['clientapp_start_s']):.2f} s median; Flower adds "
             f"{doc['flower_overhead_bytes']} bytes of content objects per message around the payload "
             "(plus metadata, HTTP and TLS framing).", ""]
    for res in doc["results"]:
        lines += [f"**dim = {res['dim']}** (SuperLink + {res['nodes']} SuperNodes up and registered in "
                  f"{res['startup_s']:.1f} s; {len(res['rounds'])} rounds in {res['run_wall_s']:.1f} s)", "",
                  "| stage | Flower s (median over rounds) | in-process s | payload bytes server→nodes | "
                  "payload bytes nodes→server |", "|---|---|---|---|---|"]
        stages = list(res["rounds"][0]["stages"])
        for stage in stages:
            secs = statistics.median(r["stages"][stage]["seconds"] for r in res["rounds"])
            loc = res["in_process"].get(stage)
            s0 = res["rounds"][0]["stages"][stage]
            lines.append(f"| {stage} | {secs:.2f} | {loc['seconds']:.4f} | {s0['bytes_out']} | {s0['bytes_in']} |"
                         if loc else f"| {stage} | {secs:.2f} | — | {s0['bytes_out']} | {s0['bytes_in']} |")
        total = statistics.median(sum(s["seconds"] for s in r["stages"].values()) for r in res["rounds"])
        local_total = sum(s["seconds"] for s in res["in_process"].values())
        err = max(r["max_abs_error"] for r in res["rounds"])
        lines += [f"| **round** | {total:.2f} | {local_total:.4f} | | |", "",
                  f"max |Flower sum − exact sum| = {err:.3g}", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dims", type=int, nargs="+", default=[1000, 100000])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--poll", type=float, default=0.1)
    p.add_argument("--out", default=str(RESULTS / "flower_stage"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import flwr

    doc = {"command": "python " + " ".join(sys.argv), "flwr": getattr(flwr, "__version__", "?"),
           "nodes": args.nodes, "load_before": os.getloadavg(), "clientapp_start_s": clientapp_start(),
           "flower_overhead_bytes": flower_overhead(),
           "results": [run_dim(d, args.rounds, args.nodes, args.poll) for d in args.dims]}
    doc["load_after"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
