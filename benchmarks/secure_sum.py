"""Secure-sum benchmark: the masked backend (SecAgg+) beside the plaintext backend, Flower
1.41's SecAgg+ (``SecAggPlusWorkflow`` in simulation) and, when benchmarks/ckks_columns.py is
present, the homomorphic columns.

    .venv/bin/python benchmarks/secure_sum.py --flower-python /tmp/flwr-venv/bin/python
    .venv/bin/python benchmarks/secure_sum.py --quick          # smoke run, writes to /tmp

Per row: per-client compute (median and max over clients; everything a client does in the
round: making its round state, checking its input, every stage), server compute (every
``process`` call plus ``outcome``), bytes each client sends / receives per parameter (message
payloads), the in-process round wall time (all parties on one thread) and the critical path
(per stage: slowest client + server, i.e. the wall time with parallel clients and a free
network). Flower: per-client time inside its ClientApp (``secaggplus_mod`` + a trivial fit),
server time of the four workflow stages minus the time spent waiting in
``grid.send_and_receive``, bytes of the config records (the global-model broadcast excluded).
Flower must not be installed in the project venv: give another interpreter with
``--flower-python`` (``python3 -m venv /tmp/flwr-venv && /tmp/flwr-venv/bin/pip install
"flwr[simulation]==1.41.0" numpy``); without it the Flower rows are left out, with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# One BLAS thread, as in the product's workers: on shared cores a multi-threaded ``dot`` (inside
# ``SumSpec.check_input``'s norm) spins and inflates every backend's numbers.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

log = logging.getLogger("secure_sum_bench")
RESULTS = Path(__file__).resolve().parent / "results"
DATA_BOUND, WEIGHT_BOUND = 1.0, 10.0
FLOWER_STAGE_TIMEOUT_S = 1800


# --- our backends (project interpreter) ----------------------------------------------------


class _TimedClient:
    """Wraps a SumClient: per-stage CPU seconds (this thread), wall seconds, bytes in/out."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stage_s: dict[str, float] = {}
        self.stage_wall: dict[str, float] = {}
        self.sent = self.received = 0

    def respond(self, stage: str, inbound: Any) -> Any:
        t, w = time.thread_time(), time.perf_counter()
        out = self.inner.respond(stage, inbound)
        self.stage_s[stage] = time.thread_time() - t
        self.stage_wall[stage] = time.perf_counter() - w
        self.received += len(inbound.payload) if inbound is not None else 0
        self.sent += len(out.payload) if out is not None else 0
        return out


class _TimedServer:
    def __init__(self, inner: Any) -> None:
        self.inner, self.stages, self.spec = inner, inner.stages, inner.spec
        self.stage_s: dict[str, float] = {}
        self.wall = 0.0

    def process(self, stage: str, inbound: dict) -> dict:
        t, w = time.thread_time(), time.perf_counter()
        try:
            return self.inner.process(stage, inbound)
        finally:
            self.stage_s[stage] = self.stage_s.get(stage, 0.0) + time.thread_time() - t
            self.wall += time.perf_counter() - w

    def outcome(self) -> Any:
        t, w = time.thread_time(), time.perf_counter()
        out = self.inner.outcome()
        self.stage_s["outcome"] = time.thread_time() - t
        self.wall += time.perf_counter() - w
        return out


class _NullRecorder:
    def record(self, msg: Any) -> None:
        pass


def measure_ours(kind: str, n: int, dim: int, threshold: int, drop: int, repeats: int, folder: Path,
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Median over ``repeats`` rounds of one backend at (n, dim); ``drop`` clients vanish
    before the masked-input stage (their pairwise masks must be recovered)."""
    from secure_fgrpo.secure_sum import DropSchedule, make_backend, run_secure_sum
    from secure_fgrpo.secure_sum.masked import client_state_dir, quantisation_bound, server_state_dir
    from secure_fgrpo.secure_sum.masked.params import choose_graph
    from secure_fgrpo.secure_sum.masked.simulate import make_spec, random_input

    backend = make_backend(kind, options or {})
    names = list(make_spec(n, 2).participants)
    backend.setup(folder, names)
    rng = np.random.default_rng(n * 1000 + dim)
    samples: list[dict[str, float]] = []
    for r in range(repeats):
        spec = make_spec(n, dim, threshold, round_=r + 1, data_bound=DATA_BOUND, weight_bound=WEIGHT_BOUND)
        inputs = {c: random_input(spec, rng) for c in names}
        setup_s: dict[str, float] = {}
        setup_wall: dict[str, float] = {}
        clients = {}
        for c in names:
            t, w = time.thread_time(), time.perf_counter()
            inner = backend.client(c, spec, client_state_dir(folder, c))
            inner.set_input(inputs[c])
            setup_s[c], setup_wall[c] = time.thread_time() - t, time.perf_counter() - w
            clients[c] = _TimedClient(inner)
        server = _TimedServer(backend.server(spec, server_state_dir(folder)))
        drops = DropSchedule({"masked_input": set(names[:drop])} if drop else {})
        t = time.perf_counter()
        out = run_secure_sum(server, clients, _NullRecorder(), drops)  # type: ignore[arg-type]
        wall = time.perf_counter() - t + sum(setup_wall.values())
        if out.aborted:
            raise RuntimeError(f"{kind} n={n}: round aborted: {out.reason}")
        exact = sum(inputs[c] for c in out.contributors)
        per_client = [setup_s[c] + sum(clients[c].stage_s.values()) for c in names[drop:]]
        per_client_wall = [setup_wall[c] + sum(clients[c].stage_wall.values()) for c in names[drop:]]
        stages = list(server.stages)
        critical = (max(setup_s.values()) + sum(max(cl.stage_s.get(s, 0.0) for cl in clients.values()) for s in stages)
                    + sum(server.stage_s.values()))
        live = [clients[c] for c in names[drop:]]
        samples.append({
            "client_ms_median": 1e3 * statistics.median(per_client), "client_ms_max": 1e3 * max(per_client),
            "client_wall_ms_median": 1e3 * statistics.median(per_client_wall),
            "server_ms": 1e3 * sum(server.stage_s.values()), "server_wall_ms": 1e3 * server.wall,
            "round_wall_s": wall, "critical_path_s": critical,
            "upload_B_per_param": statistics.median(c.sent for c in live) / dim,
            "download_B_per_param": statistics.median(c.received for c in live) / dim,
            "max_abs_error": float(np.abs(out.total - exact).max()),
        })
        del inputs, clients, server, out
    row: dict[str, Any] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    row["max_abs_error"] = max(s["max_abs_error"] for s in samples)
    row.update(backend=kind if not options else f"{kind} {json.dumps(options, sort_keys=True)}", n=n, dim=dim,
               threshold=threshold, dropped=drop, repeats=repeats, loadavg_1m=os.getloadavg()[0])
    if kind == "masked":
        spec = make_spec(n, dim, threshold, data_bound=DATA_BOUND, weight_bound=WEIGHT_BOUND)
        p = backend.params.proposal  # type: ignore[attr-defined]
        g = choose_graph(n, threshold, p.gamma, p.delta, p.sigma, p.eta, (options or {}).get("degree"))
        row.update(degree=g.degree, share_threshold=g.share_threshold,
                   quantisation_bound=quantisation_bound(spec, n - drop, (options or {}).get("modulus_bits", 32)))
    row["client_ms_per_1M"] = row["client_ms_median"] * 1e6 / dim  # CPU time of the client's thread
    row["server_ms_per_1M"] = row["server_ms"] * 1e6 / dim
    return row


# --- Flower 1.41 SecAgg+ (runs under --flower-python) --------------------------------------


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


def measure_flower(python: str, n: int, dim: int, threshold: int) -> dict[str, Any]:
    """Same n, vector and threshold; Flower's num_shares / reconstruction threshold set to our
    neighbourhood (k + 1 holders) and share threshold t_k, so both run the same graph."""
    from secure_fgrpo.secure_sum.masked.params import choose_graph

    g = choose_graph(n, threshold, 0.2, 0.1)
    k, t_k = g.degree, g.share_threshold
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flower.json"
        cmd = [python, str(Path(__file__).resolve()), "--flower-worker", str(n), str(dim), str(k + 1), str(t_k),
               str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FLOWER_STAGE_TIMEOUT_S, check=False,
                              cwd=tmp)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"Flower n={n} failed (rc {proc.returncode}): {proc.stderr[-3000:]}")
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


# --- homomorphic columns (benchmarks/ckks_columns.py, another helper's) ---------------------


def ckks_rows_mapped(n_values: list[int], dim: int, columns: list[str]) -> tuple[list[dict[str, Any]], str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from ckks_columns import ckks_rows  # type: ignore[import-not-found]
    except ImportError as err:
        return [], f"CKKS columns left out: benchmarks/ckks_columns.py could not be imported ({err})"
    rows = []
    for r in ckks_rows(n_values, dim, tuple(columns)):
        rows.append({
            "backend": f"ckks:{r['column']}", "n": r["n"], "dim": r["dim"], "threshold": None, "dropped": 0,
            "repeats": 1, "client_ms_median": None, "client_ms_max": None, "server_ms": None,
            "client_wall_ms_median": 1e3 * r["encrypt_s_per_1M"] * r["dim"] / 1e6,
            "server_wall_ms": 1e3 * r["sum_s_per_1M"] * r["dim"] / 1e6, "round_wall_s": None, "critical_path_s": None,
            "upload_B_per_param": r["upload_bytes_per_param"], "download_B_per_param": r["download_bytes_per_param"],
            "client_ms_per_1M": None, "server_ms_per_1M": None,
            "max_abs_error": None, "rel_error": r.get("rel_error"), "decrypt_ms_per_1M": 1e3 * r["decrypt_s_per_1M"],
            "loadavg_1m": r.get("loadavg_1m"),
        })
    return rows, ""


# --- report ---------------------------------------------------------------------------------


def _f(v: Any, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def to_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Secure sum: masked (SecAgg+) vs plaintext vs Flower 1.41 SecAgg+{meta['ckks_title']}", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']}; load average before/after: {meta['load_before']} / {meta['load_after']}.",
             "", "| backend | n | dim | t | k / t_k | drop | client CPU ms median / max | client CPU ms per 1M | "
             "client wall ms | server CPU ms | server CPU ms per 1M | server wall ms | up B/param | down B/param | "
             "round wall s | critical path s (CPU) | max abs err (bound) |", "|" + "---|" * 17]
    for r in rows:
        kt = f"{r['degree']} / {r['share_threshold']}" if r.get("degree") is not None else ""
        err = ""
        if r.get("max_abs_error") is not None:
            bound = f" ({r['quantisation_bound']:.1e})" if r.get("quantisation_bound") else ""
            err = f"{r['max_abs_error']:.1e}{bound}"
        lines.append(
            f"| {r['backend']} | {r['n']} | {r['dim']} | {_f(r.get('threshold'), 'd')} | {kt} | {r['dropped']} | "
            f"{_f(r['client_ms_median'], '.1f')} / {_f(r['client_ms_max'], '.1f')} | "
            f"{_f(r['client_ms_per_1M'], '.1f')} | "
            f"{_f(r['client_wall_ms_median'], '.1f')} | {_f(r['server_ms'], '.1f')} | "
            f"{_f(r['server_ms_per_1M'], '.1f')} | "
            f"{_f(r['server_wall_ms'], '.1f')} | {_f(r['upload_B_per_param'], '.3f')} | "
            f"{_f(r['download_B_per_param'], '.3f')} | {_f(r['round_wall_s'], '.3f')} | "
            f"{_f(r['critical_path_s'], '.3f')} | "
            f"{err} |")
    lines += ["", *meta["notes"]]
    return "\n".join(lines) + "\n"


def _target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, computed from this run's rows (masked rows without dropouts)."""
    out = ["Targets (issue 3), from the rows above:", ""]
    for r in rows:
        if r["backend"] != "masked" or r["dropped"]:
            continue
        same = {x["backend"]: x for x in rows if x["n"] == r["n"] and x["dim"] == r["dim"] and not x["dropped"]}
        plain, flower = same.get("plaintext"), same.get("flower-1.41 SecAgg+")
        parts = [f"up {r['upload_B_per_param']:.3f} B/param (target <= 4.2)",
                 f"client {r['client_ms_per_1M']:.1f} CPU ms per 1M (target <= 30 at n = 10)"]
        if flower:
            ratio = r["client_ms_median"] / flower["client_ms_median"]
            parts.append(f"client CPU / Flower's = {ratio:.2f} (target <= 0.5)")
        if plain:
            parts.append(f"critical path / plaintext's = {r['critical_path_s'] / plain['critical_path_s']:.2f}, "
                         f"one-thread round wall / plaintext's = {r['round_wall_s'] / plain['round_wall_s']:.2f} "
                         f"(target <= 1.10)")
        out.append(f"- n = {r['n']}, dim = {r['dim']}: " + "; ".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[5, 10, 20, 50])
    ap.add_argument("--dim", type=int, default=1_000_000)
    ap.add_argument("--big-n", type=int, default=100, help="extra row with a smaller vector (0: none)")
    ap.add_argument("--big-dim", type=int, default=100_000)
    ap.add_argument("--threshold", type=float, default=0.66, help="fraction of n (the project default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flower-python", default="", help="interpreter with flwr[simulation]==1.41.0")
    ap.add_argument("--ckks-columns", nargs="*", default=["bfv-4096", "ckks-4096", "nvflare-default"])
    ap.add_argument("--ckks-n", type=int, nargs="*", default=None, help="n values for the CKKS rows (default: --n)")
    ap.add_argument("--quick", action="store_true", help="small sizes, results to /tmp")
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("--flower-worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.flower_worker:
        n, dim, shares, thr, out = args.flower_worker
        flower_worker(int(n), int(dim), int(shares), int(thr), out)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("secure_fgrpo").setLevel(logging.WARNING)
    if args.quick:
        args.n, args.dim, args.big_n, args.big_dim, args.repeats = [5, 10], 20_000, 20, 5_000, 1
        args.out_dir = tempfile.mkdtemp(prefix="secure_sum_bench_")
        args.ckks_columns = args.ckks_columns[:1]
    load_before = os.getloadavg()
    sizes = [(n, args.dim) for n in args.n] + ([(args.big_n, args.big_dim)] if args.big_n else [])
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("plaintext", "masked"):  # warm-up: imports, first allocations
            measure_ours(kind, 4, 10_000, 3, 0, 1, Path(tmp) / f"warmup-{kind}")
        for n, dim in sizes:
            t = max(1, math.ceil(args.threshold * n))
            for kind, drop in (("plaintext", 0), ("masked", 0)) + ((("masked", n - t),) if n == 10 else ()):
                reps = args.repeats if n * dim <= 20_000_000 else 1
                rows.append(measure_ours(kind, n, dim, t, drop, reps, Path(tmp) / f"{kind}-{n}-{dim}"))
                log.info("%s n=%d drop=%d: client %.1f ms, server %.1f ms, %.3f B/param", kind, n, drop,
                         rows[-1]["client_ms_median"], rows[-1]["server_ms"], rows[-1]["upload_B_per_param"])
    # Flower after ours: its Ray cluster (processes, shared-memory object store) must not be
    # shutting down while our rows are measured.
    for n, dim in sizes if args.flower_python else []:
        t = max(1, math.ceil(args.threshold * n))
        try:
            rows.append(measure_flower(args.flower_python, n, dim, t))
            log.info("flower n=%d: client %.1f ms, server %.1f ms", n, rows[-1]["client_ms_median"],
                     rows[-1]["server_ms"])
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            notes.append(f"- Flower n={n}: no result ({str(err)[:300]})")
    if not args.flower_python:
        notes.append("- Flower rows left out: no `--flower-python` interpreter given (Flower is kept out of the "
                     "project venv; see the module docstring for the venv).")
    ckks_title = ""
    if args.ckks_columns:
        ckks, why = ckks_rows_mapped(args.ckks_n or args.n, args.dim, args.ckks_columns)
        rows += ckks
        ckks_title = " vs CKKS/BFV" if ckks else ""
        if why:
            notes.append(f"- {why}")
    rows.sort(key=lambda r: (r["n"], r["dim"], r["backend"]))
    notes += _target_lines(rows)
    notes += [
        "", "Notes:", "",
        "- client CPU ms: CPU time of the client's thread (`time.thread_time`, robust to other jobs on the "
        "shared cores) for everything one client computes in the round (round state, input check and encoding, "
        "all stages); client wall ms: the same in wall-clock time. Masked/plaintext in process, Flower inside its "
        "ClientApp (`secaggplus_mod` + a trivial fit). ckks rows (wall only): one client's encrypt + serialise.",
        "- server CPU / wall ms: all `process` calls + `outcome` (ours); Flower: its four workflow stages minus "
        "the time in `grid.send_and_receive`; ckks (wall only): parse + validate + add of all n inputs.",
        "- up/down B/param: message payload bytes per client per parameter (Flower: config records only; the "
        "global-model broadcast is not part of the secure sum).",
        "- critical path (CPU): per stage the slowest client plus the server, i.e. the round's secure-sum time "
        "with clients in parallel on a free network. Round wall: all parties in one thread (ours); Flower: its "
        "simulation runtime's wall time (dominated by polling, not compute).",
        "- Masked k / t_k: neighbour degree and share threshold from (n, γ = 0.2, δ = 0.1, σ = 40, η = 30) "
        "(masked/params.py; until this change: from n and t by k = 2(n − t), graph.py); Flower was given "
        "num_shares = k + 1 and reconstruction_threshold = t_k, i.e. the same ring.",
        "- drop > 0: that many clients vanish before the masked-input stage; the server reconstructs their mask "
        "keys and removes their pairwise masks.",
        "- Shared 2-core machine with other users' jobs: times are noisy (load averages in the JSON). BLAS is "
        "limited to one thread (OPENBLAS/OMP/MKL_NUM_THREADS=1 unless set): a multi-threaded `dot` in "
        "`SumSpec.check_input` otherwise spins on the shared cores.",
    ]
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}", "load_before":
            " ".join(f"{x:.1f}" for x in load_before), "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "notes": notes, "ckks_title": ckks_title}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "secure_sum.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (out / "secure_sum.md").write_text(to_markdown(rows, meta))
    log.info("wrote %s", out / "secure_sum.md")


if __name__ == "__main__":
    main()
