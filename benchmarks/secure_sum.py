"""Secure-sum benchmark: the masked backend (SecAgg+, logarithmic graph) beside the same backend
with the old linear degree, the plaintext backend, Flower 1.41's SecAgg+ (``SecAggPlusWorkflow``
in its simulation engine, benchmarks/secure_sum_flower.py) and, on request, the homomorphic columns.

    nice -n 10 .venv/bin/python benchmarks/secure_sum.py          # issue 17's table, ~20 min on 2 cores
    .venv/bin/python benchmarks/secure_sum.py --quick              # smoke run, writes to /tmp

Per row: per-client compute (median and max over clients; everything a client does in the
round: making its round state, checking and encoding its input, every stage) with the median
client's split by stage, server compute (every ``process`` call plus ``outcome``), bytes each
client sends / receives per parameter (message payloads), the in-process round wall time (all
parties on one thread), the critical path (per stage: slowest client + server) and the number of
dropouts (⌊δ·n⌋ before the masked input, in a second round at ``--drop-dim`` parameters) the
round survived. Flower: per-client time inside its ClientApp (``secaggplus_mod`` + a trivial
fit), server time of the four workflow stages minus the time spent waiting in
``grid.send_and_receive``, bytes of the config records (the global-model broadcast excluded).
Flower runs under this interpreter when it imports flwr and ray (``pip install
"flwr[simulation]==1.41.0"``), else under ``--flower-python``; without either its rows are left
out, with the reason. The log-n fit of the masked client CPU per 1M parameters is in the report.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from secure_sum_split import split_markdown, split_rows, verdict  # noqa: E402

log = logging.getLogger("secure_sum_bench")
RESULTS = Path(__file__).resolve().parent / "results"
DATA_BOUND, WEIGHT_BOUND = 1.0, 10.0


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
                 options: dict[str, Any] | None = None, label: str | None = None) -> dict[str, Any]:
    """Median over ``repeats`` rounds of one backend at (n, dim); ``drop`` clients vanish
    before the masked-input stage (their pairwise masks must be recovered). Inputs are not
    kept (n vectors of ``dim`` floats): the exact sum is accumulated as they are made."""
    from secure_fgrpo.secure_sum import DropSchedule, make_backend, run_secure_sum
    from secure_fgrpo.secure_sum.masked import (
        client_state_dir,
        quantisation_bound,
        server_state_dir,
    )
    from secure_fgrpo.secure_sum.masked.params import choose_graph
    from secure_fgrpo.secure_sum.masked.simulate import make_spec, random_input

    backend = make_backend(kind, options or {})
    names = list(make_spec(n, 2).participants)
    backend.setup(folder, names)
    rng = np.random.default_rng(n * 1000 + dim)
    samples: list[dict[str, float]] = []
    for r in range(repeats):
        spec = make_spec(n, dim, threshold, round_=r + 1, data_bound=DATA_BOUND, weight_bound=WEIGHT_BOUND)
        setup_s: dict[str, float] = {}
        setup_wall: dict[str, float] = {}
        clients = {}
        exact = np.zeros(dim)
        for i, c in enumerate(names):
            vector = random_input(spec, rng)
            if i >= drop:
                exact += vector
            t, w = time.thread_time(), time.perf_counter()
            inner = backend.client(c, spec, client_state_dir(folder, c))
            inner.set_input(vector)
            setup_s[c], setup_wall[c] = time.thread_time() - t, time.perf_counter() - w
            clients[c] = _TimedClient(inner)
        server = _TimedServer(backend.server(spec, server_state_dir(folder)))
        drops = DropSchedule({"masked_input": set(names[:drop])} if drop else {})
        t = time.perf_counter()
        out = run_secure_sum(server, clients, _NullRecorder(), drops)  # type: ignore[arg-type]
        wall = time.perf_counter() - t + sum(setup_wall.values())
        if out.aborted:
            raise RuntimeError(f"{kind} n={n}: round aborted: {out.reason}")
        if out.total is None or set(out.contributors) != set(names[drop:]):
            raise RuntimeError(f"{kind} n={n}: contributors {len(out.contributors)}, expected {n - drop}")
        per_client = [setup_s[c] + sum(clients[c].stage_s.values()) for c in names[drop:]]
        per_client_wall = [setup_wall[c] + sum(clients[c].stage_wall.values()) for c in names[drop:]]
        stages = list(server.stages)
        critical = (max(setup_s.values()) + sum(max(cl.stage_s.get(s, 0.0) for cl in clients.values()) for s in stages)
                    + sum(server.stage_s.values()))
        live = [clients[c] for c in names[drop:]]
        by_stage = {"setup": 1e3 * statistics.median(setup_s[c] for c in names[drop:])}
        by_stage.update({st: 1e3 * statistics.median(cl.stage_s.get(st, 0.0) for cl in live) for st in stages})
        samples.append({
            "client_ms_median": 1e3 * statistics.median(per_client), "client_ms_max": 1e3 * max(per_client),
            "client_wall_ms_median": 1e3 * statistics.median(per_client_wall),
            "server_ms": 1e3 * sum(server.stage_s.values()), "server_wall_ms": 1e3 * server.wall,
            "round_wall_s": wall, "critical_path_s": critical,
            "upload_B_per_param": statistics.median(c.sent for c in live) / dim,
            "download_B_per_param": statistics.median(c.received for c in live) / dim,
            "max_abs_error": float(np.abs(out.total - exact).max()),
            **{f"stage_ms:{st}": v for st, v in by_stage.items()},
        })
        del clients, server, out
    row: dict[str, Any] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    row["max_abs_error"] = max(s["max_abs_error"] for s in samples)
    row.update(backend=label or (kind if not options else f"{kind} {json.dumps(options, sort_keys=True)}"),
               n=n, dim=dim,
               threshold=threshold, dropped=drop, repeats=repeats, loadavg_1m=os.getloadavg()[0])
    if kind == "masked":
        spec = make_spec(n, dim, threshold, data_bound=DATA_BOUND, weight_bound=WEIGHT_BOUND)
        p = backend.params.proposal  # type: ignore[attr-defined]
        g = choose_graph(n, threshold, p.gamma, p.delta, p.sigma, p.eta, (options or {}).get("degree"))
        row.update(degree=g.degree, share_threshold=g.share_threshold, anchors=g.anchors,
                   quantisation_bound=quantisation_bound(spec, n - drop, (options or {}).get("modulus_bits", 32)))
    row["client_ms_per_1M"] = row["client_ms_median"] * 1e6 / dim  # CPU time of the client's thread
    row["server_ms_per_1M"] = row["server_ms"] * 1e6 / dim
    return row


# --- homomorphic columns (benchmarks/ckks_columns.py, another helper's) ---------------------


def ckks_rows_mapped(n_values: list[int], dim: int, columns: list[str]) -> tuple[list[dict[str, Any]], str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from ckks_columns import ckks_rows
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


STAGE_KINDS = {  # what each of a masked client's costs grows with
    "setup": "per parameter (input check, fixed-point encoding) + round state",
    "advertise": "per client (two X25519 key pairs, one signature)",
    "share": "per anchor and neighbour (A + k signature checks, k key agreements, Shamir over k + 1)",
    "masked_input": "per neighbour × per parameter (k + 1 keystreams of dim words) + k signature checks",
    "consistency": "per survivor (the survivor list: n names, no signatures)",
    "unmask": "per survivor (T acknowledgement signatures: the quorum every revealing client needs)",
}


def fit(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares of client CPU per 1M against log2 n and against n, with R² of each."""
    x = np.array([r["n"] for r in rows], dtype=float)
    y = np.array([r["client_ms_per_1M"] for r in rows])
    out: dict[str, float] = {}
    for name, xs in (("log2n", np.log2(x)), ("n", x)):
        slope, icept = np.polyfit(xs, y, 1)
        resid = y - (slope * xs + icept)
        out[f"slope_per_{name}"] = float(slope)
        out[f"r2_{name}"] = float(1 - resid @ resid / max(float(((y - y.mean()) ** 2).sum()), 1e-300))
    return out


def to_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["# Secure sum: masked SecAgg+ (logarithmic graph) vs linear degree vs Flower 1.41 SecAgg+ vs plaintext",
             "", *verdict(meta.get("splits", []), rows), "", f"Command: `{meta['command']}`", "",
             (f"Machine: {meta['machine']}; load average before/after: {meta['load_before']} / {meta['load_after']} "
             "(shared machine: other sessions' jobs ran throughout)."), "",
             ("| backend | n | dim | T | k / t_k / A | client CPU ms median / max | **client CPU ms per 1M** | "
             "server CPU ms per 1M | up B/param | down B/param | critical path s (CPU) | round wall s | "
             "δ·n dropouts survived | max abs err (bound) |"), "|" + "---|" * 14]
    for r in rows:
        kt = ""
        if r.get("degree") is not None:
            kt = f"{r['degree']} / {r['share_threshold']}"
            kt += f" / {r['anchors']}" if r.get("anchors") is not None else ""
        err = ""
        if r.get("max_abs_error") is not None:
            err = f"{r['max_abs_error']:.1e}"
            err += f" ({r['quantisation_bound']:.1e})" if r.get("quantisation_bound") else ""
        lines.append(
            f"| {r['backend']} | {r['n']} | {r['dim']} | {_f(r.get('threshold'), 'd')} | {kt} | "
            f"{_f(r['client_ms_median'], '.1f')} / {_f(r['client_ms_max'], '.1f')} | "
            f"{_f(r['client_ms_per_1M'], '.1f')} | "
            f"{_f(r['server_ms_per_1M'], '.1f')} | {_f(r['upload_B_per_param'], '.3f')} | "
            f"{_f(r['download_B_per_param'], '.3f')} | {_f(r['critical_path_s'], '.3f')} | "
            f"{_f(r['round_wall_s'], '.1f')} | "
            f"{r.get('survived', '')} | {err} |")
    staged = [r for r in rows if r.get("stage_ms:setup") is not None and r["backend"].startswith("masked")]
    if staged:
        st = list(STAGE_KINDS)
        lines += ["", "Median masked client's CPU ms by stage (what each grows with: below the table):", "",
                  "| backend | n | k | " + " | ".join(st) + " |", "|" + "---|" * (3 + len(st))]
        for r in staged:
            lines.append(f"| {r['backend']} | {r['n']} | {r['degree']} | "
                         + " | ".join(f"{r.get('stage_ms:' + s, 0.0):.1f}" for s in st) + " |")
        lines += [""] + [f"- {s}: {k}" for s, k in STAGE_KINDS.items()]
    lines += split_markdown(meta.get("splits", []))
    lines += ["", *meta["notes"]]
    return "\n".join(lines) + "\n"


def _fit_lines(rows: list[dict[str, Any]]) -> list[str]:
    out = ["", "Growth of the client CPU per 1M parameters (total / dim, at each backend's largest dim) with n:", ""]
    for label in sorted({r["backend"] for r in rows if r.get("client_ms_per_1M") is not None}):
        top = max(r["dim"] for r in rows if r["backend"] == label)
        sel = sorted((r for r in rows if r["backend"] == label and r["dim"] == top
                      and r["client_ms_per_1M"] is not None), key=lambda r: r["n"])
        if len(sel) < 3:
            continue
        f = fit(sel)
        values = " / ".join(f"{r['client_ms_per_1M']:.1f}" for r in sel)
        out.append(f"- {label} at {top} parameters (n = {', '.join(str(r['n']) for r in sel)}: {values} ms per 1M): "
                   f"{f['slope_per_log2n']:.1f} ms per doubling of n (R² {f['r2_log2n']:.3f} against log2 n), "
                   f"{f['slope_per_n']:.3f} ms per added client (R² {f['r2_n']:.3f} against n)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    ap.add_argument("--dims", type=int, nargs="+", default=[125_000, 500_000],
                    help="vector sizes of each of our rows (≥ 2: the per-parameter / per-round split)")
    ap.add_argument("--linear-n", type=int, nargs="*", default=[50, 100, 200],
                    help="n for the old linear-degree rows, k = 2(n - T) (n = 500 would take ~10 min alone)")
    ap.add_argument("--drop-dim", type=int, default=2_000, help="vector size of the dropout rounds")
    ap.add_argument("--threshold", type=float, default=0.66, help="fraction of n (the project default)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--flower-python", default=sys.executable, help="interpreter with flwr[simulation]==1.41.0")
    ap.add_argument("--flower-n", type=int, nargs="*", default=None, help="n for Flower's rows (default: --n)")
    ap.add_argument("--flower-dim", type=int, default=None, help="Flower's vector size (default: --dim)")
    ap.add_argument("--flower-timeout", type=int, default=1800, help="seconds for one Flower round")
    ap.add_argument("--ckks-columns", nargs="*", default=[], help="e.g. bfv-4096 ckks-4096 nvflare-default")
    ap.add_argument("--quick", action="store_true", help="small sizes, results to /tmp")
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("--render", type=Path, help="re-write the report from this run's JSON (no measuring)")
    args = ap.parse_args()
    if args.render:
        doc = json.loads(args.render.read_text())
        meta = doc["meta"]
        kept = meta["notes"][: meta["notes"].index("") if "" in meta["notes"] else len(meta["notes"])]
        meta["notes"] = [x for x in kept if "(partial" not in x] + _fit_lines(doc["rows"]) + _notes()
        meta["splits"] = split_rows(doc["rows"])
        args.render.write_text(json.dumps(doc, indent=1) + "\n")
        args.render.with_suffix(".md").write_text(to_markdown(doc["rows"], meta))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("secure_fgrpo").setLevel(logging.WARNING)
    if args.quick:
        args.n, args.dims, args.linear_n, args.repeats = [10, 20, 30], [10_000, 40_000], [20], 1
        args.flower_n = [10]
        args.out_dir = tempfile.mkdtemp(prefix="secure_sum_bench_")
    load_before = os.getloadavg()
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("plaintext", "masked"):  # warm-up: imports, first allocations
            measure_ours(kind, 4, 10_000, 3, 0, 1, Path(tmp) / f"warmup-{kind}")
        for n in args.n:
            t, d = max(1, math.ceil(args.threshold * n)), math.floor(0.1 * n + 1e-9)
            linear = {"degree": min(n - 1, 2 * (n - t))}  # the policy still checks it (γ = 0.2, δ = 0.1)
            runs: list[tuple[str, str, dict[str, Any]]] = [("plaintext", "plaintext", {}), ("masked", "masked", {})]
            runs += [("masked", "masked, linear k = 2(n − T)", linear)] if n in args.linear_n else []
            for kind, label, opts in runs:
                folder = Path(tmp) / f"{label}-{n}".replace(" ", "_")
                survived = ""
                if kind == "masked" and d:
                    measure_ours(kind, n, args.drop_dim, t, d, 1, folder.with_name(folder.name + "-d"), opts, label)
                    survived = f"{d} of {n}"  # the round completed, exact within the bound
                for dim in args.dims:
                    try:
                        row = measure_ours(kind, n, dim, t, 0, args.repeats, folder.with_name(f"{folder.name}-{dim}"),
                                           opts, label)
                    except (RuntimeError, MemoryError) as err:  # one row's failure keeps the others
                        notes.append(f"- {label} n={n} dim={dim}: no result ({str(err)[:200]})")
                        continue
                    row["survived"] = survived
                    rows.append(row)
                    log.info("%s n=%d dim=%d: client %.1f ms (%.1f per 1M), server %.1f ms, %.3f B/param", label, n,
                             dim, row["client_ms_median"], row["client_ms_per_1M"], row["server_ms"],
                             row["upload_B_per_param"])
                _write(args, rows, notes, load_before, final=False)  # kept if a later row or Flower never ends
    rows += flower_rows(args, notes)
    if args.ckks_columns:
        ckks, why = ckks_rows_mapped(args.n, max(args.dims), args.ckks_columns)
        rows += ckks
        notes += [f"- {why}"] if why else []
    _write(args, rows, notes, load_before, final=True)


def _write(args: argparse.Namespace, rows: list[dict[str, Any]], notes: list[str], load_before: tuple[float, ...],
           final: bool) -> None:
    rows = sorted(rows, key=lambda r: (r["n"], r["dim"], r["backend"]))
    extra = [] if final else ["- (partial: written before the Flower rows)"]
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}", "load_before":
            " ".join(f"{x:.1f}" for x in load_before), "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "notes": notes + extra + _fit_lines(rows) + _notes(), "splits": split_rows(rows)}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "secure_sum.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (out / "secure_sum.md").write_text(to_markdown(rows, meta))
    log.info("wrote %s", out / "secure_sum.md")


def flower_rows(args: argparse.Namespace, notes: list[str]) -> list[dict[str, Any]]:
    """Flower after ours: its Ray cluster (processes, shared-memory object store) must not be
    shutting down while our rows are measured. Largest n first is not tried: smallest first."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from secure_sum_flower import flower_available, measure_flower

    why = flower_available(args.flower_python) if args.flower_python else "no --flower-python given"
    if why:
        notes.append(f"- Flower rows left out: {why} (needs `flwr[simulation]==1.41.0`, i.e. flwr and ray).")
        return []
    rows = []
    dim = args.flower_dim or max(args.dims)
    for n in args.flower_n if args.flower_n is not None else args.n:
        t = max(1, math.ceil(args.threshold * n))
        start = time.perf_counter()
        try:
            rows.append(measure_flower(args.flower_python, n, dim, t, args.flower_timeout))
            log.info("flower n=%d: client %.1f ms, server %.1f ms", n, rows[-1]["client_ms_median"],
                     rows[-1]["server_ms"])
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            notes.append(f"- Flower n={n}: no result after {time.perf_counter() - start:.0f} s ({str(err)[:300]})")
            break
    return rows


def _notes() -> list[str]:
    return [
        "", "Notes:", "",
        ("- client CPU ms: CPU time of the client's thread (`time.thread_time`, robust to other jobs on the "
        "shared cores) for everything one client computes in the round (round state, input check and encoding, "
        "all stages). Masked/plaintext in process, Flower inside its ClientApp (`secaggplus_mod` + a trivial fit)."),
        ("- server CPU ms: all `process` calls + `outcome` (ours); Flower: its four workflow stages minus the time in "
        "`grid.send_and_receive`."),
        ("- up/down B/param: message payload bytes per client per parameter (Flower: config records only; the "
        "global-model broadcast is not part of the secure sum)."),
        ("- critical path (CPU): per stage the slowest client plus the server, i.e. the round's secure-sum time with "
        "clients in parallel on a free network. Round wall: all parties in one thread (ours); Flower: its "
        "simulation runtime's wall time (dominated by its polling, not compute)."),
        ("- k / t_k / A: neighbour degree, share threshold and graph anchors from (n, γ = 0.2, δ = 0.1, σ = 40, "
        "η = 30) (masked/params.py); the linear rows force k = 2(n − T) (the rule before issue 17; t_k from the same "
        "recovery bound). Flower was given num_shares = k + 1 and reconstruction_threshold = t_k, i.e. the same ring."),
        ("- δ·n dropouts survived: a second round of the same configuration at --drop-dim parameters in which ⌊0.1·n⌋ "
        "clients vanish before the masked input; it completed with the exact sum of the others within the "
        "quantisation bound (the server reconstructed the dropped clients' mask keys). Flower's dropout path is "
        "not exercised here."),
        ("- BLAS is limited to one thread (OPENBLAS/OMP/MKL_NUM_THREADS=1 unless set): a multi-threaded `dot` in "
        "`SumSpec.check_input` otherwise spins on the shared cores."),
    ]


if __name__ == "__main__":
    main()
