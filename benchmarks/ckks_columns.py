"""Homomorphic columns of the secure-sum benchmark, side by side with plaintext and with
NVFlare's default TenSEAL settings (CKKS, N=8192, moduli [60, 40, 40], scale 2^40, symmetric,
one ``ckks_vector`` per update, serialised whole).

Each (column, n) runs in its own subprocess so that its peak RSS is its own. Times are scaled
to 1M parameters: ``encrypt`` is one client's encrypt + serialise, ``sum`` is the server's
parse + validate + add of all n inputs, ``decrypt`` is one decryptor's load + decrypt + decode.

    python benchmarks/ckks_columns.py [--dim 1000000] [--n 5 10 20]

writes benchmarks/results/secure_sum_ckks.{json,md}. ``ckks_rows(n_values, dim)`` returns the
same rows for benchmarks/secure_sum.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("ckks_columns")

COLUMNS = ("plaintext", "nvflare-default", "bfv-4096", "ckks-4096", "nvflare-params-seeded", "ckks-weights-server",
           "ckks-weights-server-d7")
OUR_OPTIONS: dict[str, dict[str, Any]] = {
    "bfv-4096": {},  # the default
    # CKKS only in server-blind since issue 13 (a CKKS decryption at the server gives it the key).
    "ckks-4096": {"scheme": "ckks", "reveal": "server-blind"},
    "nvflare-params-seeded": {"scheme": "ckks", "params": "nvflare", "reveal": "server-blind"},
    "ckks-weights-server": {"weights": "server", "tau": 1.0, "gain_clip": 2.0, "poly_degree": 15,
                            "reveal": "server-blind"},
    "ckks-weights-server-d7": {"weights": "server", "tau": 1.0, "gain_clip": 2.0, "poly_degree": 7,
                               "reveal": "server-blind"},
}
DATA_BOUND, WEIGHT_BOUND = 1.0, 10.0
RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _inputs(n: int, dim: int, seed: int) -> list[np.ndarray]:
    """Non-secret simulated updates ``[e·Δ, e]`` inside the bounds."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        e = rng.uniform(0.2, 1.0) * WEIGHT_BOUND
        d = rng.normal(size=dim - 1)
        d *= rng.uniform(0.2, 1.0) * DATA_BOUND / np.linalg.norm(d)
        out.append(np.concatenate([d, [e]]))
    return out


def _row(column: str, n: int, dim: int, up: float, down: float, enc: float, summ: float, dec: float,
         err: float, base_rss: float, **extra: Any) -> dict[str, Any]:
    per = 1e6 / dim
    return {"column": column, "n": n, "dim": dim, "upload_bytes_per_param": up / dim,
            "download_bytes_per_param": down / dim, "encrypt_s_per_1M": enc * per,
            "sum_s_per_1M": summ * per, "decrypt_s_per_1M": dec * per, "rel_error": err,
            "peak_rss_mb": _rss_mb(), "rss_before_mb": base_rss, **extra}


def _plaintext(n: int, dim: int, vecs: list[np.ndarray], base: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    payloads = [v.astype("<f8").tobytes() for v in vecs]
    enc = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    total = np.zeros(dim)
    for p in payloads:
        total += np.frombuffer(p, dtype="<f8")
    summ = time.perf_counter() - t0
    expected = np.sum(vecs, axis=0)
    err = float(np.linalg.norm(total - expected) / np.linalg.norm(expected))
    return _row("plaintext", n, dim, len(payloads[0]), len(payloads[0]), enc, summ, 0.0, err, base,
                params="float64", security_bits=0)


def _nvflare(n: int, dim: int, vecs: list[np.ndarray], base: float) -> dict[str, Any]:
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, -1, [60, 40, 40], encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC)
    ctx.global_scale = 2 ** 40
    public = ts.context_from(ctx.serialize(save_secret_key=False))
    t0 = time.perf_counter()
    payloads = [ts.ckks_vector(ctx, v).serialize() for v in vecs]
    enc = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    total = ts.ckks_vector_from(public, payloads[0]) + ts.ckks_vector_from(public, payloads[1])
    for p in payloads[2:]:
        total += ts.ckks_vector_from(public, p)  # in place: never .copy() (copies the context)
    reply = total.serialize()
    summ = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = np.array(ts.ckks_vector_from(ctx, reply).decrypt())
    dec = time.perf_counter() - t0
    expected = np.sum(vecs, axis=0)
    err = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    return _row("nvflare-default", n, dim, len(payloads[0]), len(reply), enc, summ, dec, err, base,
                params="CKKS N=8192 [60,40,40] 2^40 (TenSEAL ckks_vector)", security_bits=128)


def _ours(column: str, n: int, dim: int, vecs: list[np.ndarray], base: float, seed: int) -> dict[str, Any]:
    from secure_fgrpo.secure_sum import SumSpec, make_backend
    from secure_fgrpo.secure_sum.ckks import client_dir, server_dir, server_weight_input

    options = OUR_OPTIONS[column]
    backend = make_backend("ckks", options)
    names = [f"c{i:02d}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        backend.setup(run, names)
        spec = SumSpec(round=0, dim=dim, data_bound=DATA_BOUND, weight_bound=WEIGHT_BOUND,
                       participants=tuple(names), threshold=1)
        clients = {nm: backend.client(nm, spec, client_dir(run, nm)) for nm in names}
        expected = np.sum(vecs, axis=0)
        if backend.weights_on_server:
            rng = np.random.default_rng(seed + 1)
            gains = rng.uniform(-2.0, 2.0, size=n)
            expected = np.zeros(dim)
            for nm, v, g in zip(names, vecs, gains, strict=True):
                scaled = v * np.exp(-2.0)  # n^α·[Δ, 1] small enough that e^g·it stays in bounds
                clients[nm].set_input(server_weight_input(scaled[:-1], scaled[-1], g))
                expected += scaled * np.exp(g)
        else:
            for nm, v in zip(names, vecs, strict=True):
                clients[nm].set_input(v)
        server = backend.server(spec, server_dir(run))
        t0 = time.perf_counter()
        msgs = {nm: clients[nm].respond("input", None) for nm in names}
        enc = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        replies = server.process("input", msgs)
        summ = time.perf_counter() - t0
        decryptor, reply = next(iter(replies.items()))  # server-blind: every contributor gets one
        t0 = time.perf_counter()
        answer = clients[decryptor].respond("decrypt", reply)
        dec = time.perf_counter() - t0
        if answer is None:
            total = clients[decryptor].result()
        else:
            server.process("decrypt", {decryptor: answer})
            total = server.outcome().total
        checks = _check_costs(run, names, msgs, reply, clients, server)
        err = float(np.linalg.norm(total - expected) / np.linalg.norm(expected))
        p = backend.params
        extra = {"params": f"{p.scheme.upper()} N={p.poly_modulus_degree} {list(p.coeff_mod_bit_sizes)}"
                           + (f" t={p.plain_modulus_bits}b" if p.scheme == "bfv" else f" 2^{p.scale_bits}"),
                 "security_bits": p.security_bits, "modulus_bits": p.total_bits,
                 "poly_seconds_per_client": server.stats.get("poly_seconds", 0.0) / n}
        if backend.approx is not None:
            extra["approx_max_rel_error"] = backend.approx.max_rel_error
        extra.update(checks)
        return _row(column, n, dim, len(msgs[names[0]].payload), len(reply.payload), enc, summ, dec, err, base, **extra)


def _check_costs(run: Path, names: list[str], msgs: dict[str, Any], reply: Any, clients: dict[str, Any],
                 server: Any) -> dict[str, float]:
    """Issue 13's checks, timed on the round's real payloads (seconds, unscaled): one client's
    input digest + signature; the server's digest + signature check and strict SEAL/zstd framing
    of all n inputs; a decryptor's check of the n signed attestations that come with the sum."""
    from secure_fgrpo.secure_sum.ckks import client_dir
    from secure_fgrpo.secure_sum.ckks.binding import body_digest
    from secure_fgrpo.secure_sum.ckks.sealio import check_seal_header
    from secure_fgrpo.secure_sum.ckks.wire import decode_bundle
    from secure_fgrpo.secure_sum.masked.keys import load_identity

    me = names[0]
    identity = load_identity(client_dir(run, me))
    t0 = time.perf_counter()
    clients[me].binding.sign(identity, me, body_digest(msgs[me].payload))
    sign_s = time.perf_counter() - t0
    codec = server.codec
    level = codec.gain_level if codec.weights_on_server else codec.input_level
    size_in = codec.content_size(codec.input_level, True)
    size_gain = codec.content_size(level, True)
    t0 = time.perf_counter()
    for nm in names:
        b = decode_bundle(msgs[nm].payload)
        assert server.binding.verify(nm, body_digest(msgs[nm].payload), b.signature)
        for blob in b.chunks:
            assert check_seal_header(blob, codec.input_level.max_bytes(codec.n, 3), size_in) is None
        if b.gain is not None:
            assert check_seal_header(b.gain, level.max_bytes(codec.n, 3), size_gain) is None
    server_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    clients[reply.recipient]._check_contributors(decode_bundle(reply.payload))
    decryptor_s = time.perf_counter() - t0
    return {"sign_s_per_client": sign_s, "server_checks_s_per_round": server_s,
            "decryptor_checks_s": decryptor_s}


def measure(column: str, n: int, dim: int, seed: int = 0) -> dict[str, Any]:
    """One cell, in this process (call through :func:`ckks_rows` for a clean peak RSS)."""
    vecs = _inputs(n, dim, seed)
    base = _rss_mb()
    if column == "plaintext":
        return _plaintext(n, dim, vecs, base)
    if column == "nvflare-default":
        return _nvflare(n, dim, vecs, base)
    if column in OUR_OPTIONS:
        return _ours(column, n, dim, vecs, base, seed)
    raise ValueError(f"unknown column {column!r}; choose from {', '.join(COLUMNS)}")


def ckks_rows(n_values: list[int], dim: int, columns: tuple[str, ...] = COLUMNS) -> list[dict[str, Any]]:
    """All cells, each measured in a fresh subprocess; rows carry the machine's load average."""
    rows = []
    for n in n_values:
        for column in columns:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", column, str(n), str(dim)],
                                  capture_output=True, text=True, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"benchmark cell {column} n={n} failed: {proc.stderr[-2000:]}")
            row = json.loads(lines[-1])
            row["loadavg_1m"] = os.getloadavg()[0]
            rows.append(row)
            log.info("%s n=%d: %.2f B/param, enc %.3fs/1M", column, n, row["upload_bytes_per_param"],
                     row["encrypt_s_per_1M"])
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| column | n | params | security | upload B/param | download B/param | encrypt s/1M | "
            "sum s/1M (all n) | decrypt s/1M | peak RSS MB | rel. error |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        sec = f"{r['security_bits']}-bit" if r["security_bits"] else "none"
        lines.append(f"| {r['column']} | {r['n']} | {r['params']} | {sec} | {r['upload_bytes_per_param']:.2f} | "
                     f"{r['download_bytes_per_param']:.2f} | {r['encrypt_s_per_1M']:.3f} | {r['sum_s_per_1M']:.3f} | "
                     f"{r['decrypt_s_per_1M']:.3f} | {r['peak_rss_mb']:.0f} | {r['rel_error']:.1e} |")
    return "\n".join(lines) + "\n"


def compare_markdown(previous: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """Issue 13: the new rows next to the previous ones, and the cost of the new checks."""
    old = {(r["column"], r["n"]): r for r in previous}
    head = ("| column | n | dim | encrypt s/1M before → now | sum s/1M before → now | decrypt s/1M before → now | "
            "upload B/param before → now | sign ms/client | server checks ms/round (all n) | "
            "decryptor checks ms | rel. error now |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        o = old.get((r["column"], r["n"]), {})
        f = (lambda k, d=3, o=o: f"{o[k]:.{d}f}" if k in o else "—")  # noqa: E731
        lines.append(f"| {r['column']} | {r['n']} | {r['dim']} | "
                     f"{f('encrypt_s_per_1M')} → {r['encrypt_s_per_1M']:.3f} | "
                     f"{f('sum_s_per_1M')} → {r['sum_s_per_1M']:.3f} | {f('decrypt_s_per_1M')} → "
                     f"{r['decrypt_s_per_1M']:.3f} | "
                     f"{f('upload_bytes_per_param', 2)} → {r['upload_bytes_per_param']:.2f} | "
                     f"{1e3 * r['sign_s_per_client']:.2f} | {1e3 * r['server_checks_s_per_round']:.2f} | "
                     f"{1e3 * r['decryptor_checks_s']:.2f} | {r['rel_error']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--columns", nargs="+", default=list(COLUMNS))
    ap.add_argument("--one", nargs=3, metavar=("COLUMN", "N", "DIM"), help=argparse.SUPPRESS)
    ap.add_argument("--compare", metavar="NAME", help="write results/NAME.{json,md}: these rows next to the "
                    "--previous rows (issue 13's cost of the new checks)")
    ap.add_argument("--previous", default=str(RESULTS / "secure_sum_ckks.json"),
                    help="JSON of the rows before the change (same sizes, run just before, for a fair comparison)")
    args = ap.parse_args()
    if args.one:
        column, n, dim = args.one
        print(json.dumps(measure(column, int(n), int(dim))))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.time()
    rows = ckks_rows(args.n, args.dim, tuple(args.columns))
    meta = {"dim": args.dim, "n": args.n, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "wall_s": time.time() - started,
            "note": ("shared 2-core machine (other users' jobs run concurrently): times are noisy; "
                     "TenSEAL ckks_vector uses its default thread pool, our codec is single-threaded; "
                     "peak RSS includes the interpreter, numpy inputs for all n clients and all n payloads")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.compare:
        previous = json.loads(Path(args.previous).read_text())
        meta["command"] = " ".join(["python", *sys.argv])
        command = previous["meta"].get("command", "the same script at the commit before")
        meta["previous"] = (f"{args.previous}: {command}, "
                            f"dim {previous['meta']['dim']}, load "
                            f"{min(r['loadavg_1m'] for r in previous['rows']):.1f}-"
                            f"{max(r['loadavg_1m'] for r in previous['rows']):.1f}")
        meta["previous_rows"] = previous["rows"]
        (RESULTS / f"{args.compare}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        md = (f"# Secure sum, CKKS/BFV: the cost of issue 13's checks\n\nCommand: `{meta['command']}`\n\n"
              f"{compare_markdown(previous['rows'], rows)}\nBefore: {meta['previous']}. Times are per 1M "
              f"parameters. Since issue 13 the CKKS columns run server-blind (CKKS is refused where the server "
              f"decrypts). Check times are unscaled (they do not grow with dim beyond hashing). "
              f"Notes: {meta['note']}. Load average during the run: "
              f"{min(r['loadavg_1m'] for r in rows):.1f}-{max(r['loadavg_1m'] for r in rows):.1f}.\n")
        (RESULTS / f"{args.compare}.md").write_text(md)
        log.info("wrote %s", RESULTS / f"{args.compare}.md")
        return
    (RESULTS / "secure_sum_ckks.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    md = (f"# Secure sum: homomorphic columns (dim={args.dim})\n\n{to_markdown(rows)}\n"
          f"Notes: {meta['note']}. Load average during the run: "
          f"{min(r['loadavg_1m'] for r in rows):.1f}-{max(r['loadavg_1m'] for r in rows):.1f}.\n")
    (RESULTS / "secure_sum_ckks.md").write_text(md)
    log.info("wrote %s", RESULTS / "secure_sum_ckks.md")


if __name__ == "__main__":
    main()
