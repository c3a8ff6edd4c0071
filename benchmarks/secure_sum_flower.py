"""Flower 1.41's SecAgg+ for benchmarks/secure_sum.py: one ``SecAggPlusWorkflow`` round in
Flower's simulation engine (Ray), with per-client CPU time measured inside the ClientApp.

    .venv/bin/python benchmarks/secure_sum_flower.py N DIM NUM_SHARES THRESHOLD OUT_JSON

Needs ``flwr[simulation]==1.41.0`` (flwr and ray) in the interpreter that runs it; secure_sum.py
uses its own interpreter when both import, else ``--flower-python``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

FLOWER_STAGE_TIMEOUT_S = 1800


def flower_available(python: str) -> str:
    """'' when ``python`` can import flwr and ray (Flower's simulation engine), else why not."""
    proc = subprocess.run([python, "-c", "import flwr, ray"], capture_output=True, text=True, check=False)
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def flower_worker(n: int, dim: int, num_shares: int, threshold: int, out_path: str) -> None:
    """One SecAggPlusWorkflow round in Flower's simulation runtime; writes raw timings."""
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.simulation import run_simulation

    client_log = out_path + ".clients.jsonl"

    def config_bytes(content: Any) -> int:
        total = 0
        for rec in content.config_records.values():
            for v in rec.values():
                if isinstance(v, bytes):
                    total += len(v)
                elif isinstance(v, list):
                    total += sum(len(x) if isinstance(x, bytes) else 8 for x in v)
                else:
                    total += 8
        return total

    def timing_mod(msg: Any, ctx: Any, call_next: Any) -> Any:
        stage = msg.content.config_records["secaggplus_configs"].get("stage", "?")
        got = config_bytes(msg.content)
        t, w = time.thread_time(), time.perf_counter()
        out = call_next(msg, ctx)
        dt, dw = time.thread_time() - t, time.perf_counter() - w
        with open(client_log, "a") as fh:
            fh.write(json.dumps({"node": msg.metadata.dst_node_id, "stage": stage, "seconds": dt, "wall": dw,
                                 "bytes_in": got, "bytes_out": config_bytes(out.content)}) + "\n")
        return out

    vec: dict[str, np.ndarray] = {}

    class Client(NumPyClient):
        def fit(self, parameters: Any, config: Any) -> Any:
            if "v" not in vec:  # a bounded update, made once per worker process
                vec["v"] = np.full(dim - 1, 0.5 / math.sqrt(dim - 1), dtype=np.float32)
            return [vec["v"]], 1, {}

    client_app = ClientApp(client_fn=lambda context: Client().to_client(), mods=[timing_mod, secaggplus_mod])
    server_t: dict[str, Any] = {"stages": {}, "stages_wall": {}, "waiting": 0.0, "waiting_cpu": 0.0}

    class Timed(SecAggPlusWorkflow):
        def _timed(self, name: str, fn: Any, grid: Any, context: Any, state: Any) -> bool:
            w0, c0 = server_t["waiting"], server_t["waiting_cpu"]
            w, t = time.perf_counter(), time.thread_time()
            ok = fn(grid, context, state)
            server_t["stages"][name] = time.thread_time() - t - (server_t["waiting_cpu"] - c0)
            server_t["stages_wall"][name] = time.perf_counter() - w - (server_t["waiting"] - w0)
            return ok

        def setup_stage(self, g: Any, c: Any, s: Any) -> bool:
            return self._timed("setup", super().setup_stage, g, c, s)

        def share_keys_stage(self, g: Any, c: Any, s: Any) -> bool:
            return self._timed("share_keys", super().share_keys_stage, g, c, s)

        def collect_masked_vectors_stage(self, g: Any, c: Any, s: Any) -> bool:
            return self._timed("collect_masked_vectors", super().collect_masked_vectors_stage, g, c, s)

        def unmask_stage(self, g: Any, c: Any, s: Any) -> bool:
            return self._timed("unmask", super().unmask_stage, g, c, s)

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Any, context: Any) -> None:
        send = grid.send_and_receive

        def timed_send(*a: Any, **k: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return send(*a, **k)
            finally:
                server_t["waiting"] += time.perf_counter() - t
                server_t["waiting_cpu"] += time.thread_time() - c

        grid.send_and_receive = timed_send
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_available_clients=n, min_fit_clients=n,
                          initial_parameters=ndarrays_to_parameters([np.zeros(dim - 1, np.float32)]))
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        t = time.perf_counter()
        DefaultWorkflow(fit_workflow=Timed(num_shares=num_shares, reconstruction_threshold=threshold))(grid, legacy)
        server_t["round_wall_s"] = time.perf_counter() - t
        Path(out_path).write_text(json.dumps(server_t))

    run_simulation(server_app, client_app, num_supernodes=n,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 1, "include_dashboard": False}})


def measure_flower(python: str, n: int, dim: int, threshold: int,
                   timeout_s: int = FLOWER_STAGE_TIMEOUT_S) -> dict[str, Any]:
    """Same n, vector and threshold; Flower's num_shares / reconstruction threshold set to our
    neighbourhood (k + 1 holders) and share threshold t_k, so both run the same graph."""
    from secure_fgrpo.secure_sum.masked.params import choose_graph

    g = choose_graph(n, threshold, 0.2, 0.1)
    k, t_k = g.degree, g.share_threshold
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flower.json"
        cmd = [python, str(Path(__file__).resolve()), str(n), str(dim), str(k + 1), str(t_k), str(out)]
        # Its own session: on a timeout the whole Ray cluster it started goes with it.
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            done = Path(str(out) + ".clients.jsonl")
            stages = Counter(json.loads(x)["stage"] for x in done.read_text().splitlines()) if done.exists() else {}
            raise RuntimeError(f"Flower n={n}: round not finished after {timeout_s} s; client stages done: "
                               f"{dict(stages)} of {n} each") from None
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"Flower n={n} failed (rc {proc.returncode}): {err[-3000:]}")
        server = json.loads(out.read_text())
        rows = [json.loads(line) for line in (Path(str(out) + ".clients.jsonl")).read_text().splitlines()]
    per_node: dict[int, dict[str, float]] = {}
    for r in rows:
        d = per_node.setdefault(r["node"], {"s": 0.0, "out": 0, "in": 0})
        d["s"] += r["seconds"]
        d["out"] += r["bytes_out"]
        d["in"] += r["bytes_in"]
    secs = [d["s"] for d in per_node.values()]
    walls: dict[int, float] = {}
    for r in rows:
        walls[r["node"]] = walls.get(r["node"], 0.0) + r["wall"]
    by_stage: dict[str, float] = {}
    for r in rows:
        by_stage[r["stage"]] = max(by_stage.get(r["stage"], 0.0), r["seconds"])
    server_s = sum(server["stages"].values())
    return {
        "backend": "flower-1.41 SecAgg+", "n": n, "dim": dim, "threshold": threshold, "dropped": 0, "repeats": 1,
        "degree": k, "share_threshold": t_k,
        "client_ms_median": 1e3 * statistics.median(secs), "client_ms_max": 1e3 * max(secs),
        "client_wall_ms_median": 1e3 * statistics.median(walls.values()),
        "server_ms": 1e3 * server_s, "server_wall_ms": 1e3 * sum(server["stages_wall"].values()),
        "round_wall_s": server["round_wall_s"],
        "critical_path_s": sum(by_stage.values()) + server_s,
        "upload_B_per_param": statistics.median(d["out"] for d in per_node.values()) / dim,
        "download_B_per_param": statistics.median(d["in"] for d in per_node.values()) / dim,
        "client_ms_per_1M": 1e3 * statistics.median(secs) * 1e6 / dim, "server_ms_per_1M": 1e3 * server_s * 1e6 / dim,
        "max_abs_error": None, "loadavg_1m": os.getloadavg()[0],
    }


if __name__ == "__main__":
    n, dim, shares, thr, out = sys.argv[1:6]
    flower_worker(int(n), int(dim), int(shares), int(thr), out)
