"""Flower's Simulation Engine against the project's process pool: the same sampled round.

    nice -n 5 .venv/bin/python benchmarks/sim_engine.py                 # 1,000 clients, 50 a round, 2 rounds
    .venv/bin/python benchmarks/sim_engine.py --quick                   # the test model, 40 clients, 4 a round

Both sides: the generated population of benchmarks/many_clients.py (``scale_config``: Dirichlet
over task families, long-tailed sizes, tiny local work on the embedded model, LoRA r = 1), the
federation's own fixed-size draw (federation/server.py), 2 CPUs of compute (2 pool workers / 2
Ray actors), the masked secure sum.

- **pool**: ``Federation.run`` (benchmarks/many_clients.py ``run_population``), the package's round.
- **engine**: ``flwr.simulation.run_simulation`` with one virtual SuperNode per client. The
  ServerApp names the nodes (one ``hello`` to every node), then per round sends the sampled
  nodes the global vector; each ClientApp builds its client's data from the population by
  partition id (data/population.py), runs the party's local GRPO step (federation/local.py
  ``run_training``: the same job the pool runs), and holds a real masked secure-sum client in
  its ``Context.state`` between messages (flower/state.py); the server runs the real masked
  server stage by stage over flower/link.py. Not run there: FGRPO's gain (e = 1 for every
  client, Δ clipped at ``federation.delta_clip``), checkpoints, metrics, evaluation of the global.

Peak memory: RSS of the whole process tree (driver, Ray's GCS/raylet/workers or the pool's
workers), sampled every 0.2 s. Writes results/sim_engine.{json,md}. Ray is stopped at the end.
Needs ``pip install -e '.[sim]'`` (flwr[simulation], i.e. ray).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])  # Ray's workers

from many_clients import TreeMemory, run_population, scale_config  # noqa: E402

log = logging.getLogger("sim_engine")
RESULTS = HERE / "results"


def engine_worker(size: int, per_round: int, rounds: int, quick: bool, root: str) -> dict[str, Any]:
    """One federation on Flower's Simulation Engine in this (spawned) process."""
    import numpy as np
    from flwr.app import ConfigRecord, Context, Message
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    from secure_fgrpo.flower.link import FlowerLink
    from secure_fgrpo.flower.wire import Envelope

    out_path = Path(root) / "engine.json"
    keys = Path(root) / "keys"
    cfg = scale_config(size, per_round, rounds, quick=quick)
    names = [c.name for c in cfg.clients]
    t0 = time.perf_counter()
    from secure_fgrpo.secure_sum import make_backend

    be = make_backend("masked", {})
    be.setup(keys, names)  # every client's identity key and the roster of their public keys
    opts = {"roster": str(be.roster_path)}  # type: ignore[attr-defined]  # the masked backend's
    keys_s = time.perf_counter() - t0
    client_app = ClientApp()

    def _reply(msg: Message, env: Envelope) -> Message:
        return Message(env.to_content(), reply_to=msg)

    @client_app.query("hello")
    def hello(msg: Message, context: Context) -> Message:
        env = Envelope.from_content(msg.content, "hello")
        name = names[int(context.node_config["partition-id"])]
        return _reply(msg, Envelope(env.round, "hello", "name", name.encode()))

    @client_app.query("train")
    def train(msg: Message, context: Context) -> Message:
        """The party's local step on its own population share, then its masked client."""
        from secure_fgrpo.data.population import client_data
        from secure_fgrpo.federation.local import TrainJob, run_training
        from secure_fgrpo.flower.state import dump_client
        from secure_fgrpo.model.load import resolve_model_path
        from secure_fgrpo.rollout import SamplingSpec
        from secure_fgrpo.secure_sum import make_backend
        from secure_fgrpo.secure_sum.base import SumSpec
        from secure_fgrpo.secure_sum.masked import client_state_dir
        from secure_fgrpo.seeding import derive_seed

        env = Envelope.from_content(msg.content, "train")
        name = names[int(context.node_config["partition-id"])]
        spec = SumSpec(**{**json.loads(env.kind), "participants": tuple(json.loads(env.kind)["participants"])})
        vec = np.frombuffer(env.payload, dtype=np.float32).copy()
        t = time.perf_counter()
        own = next(c for c in cfg.clients if c.name == name)
        assert cfg.population is not None
        data = client_data(cfg.population, name, cfg.seed, cfg.data.train_size, cfg.data.eval_size)
        job = TrainJob(client=name, round=spec.round, model_path=resolve_model_path(cfg.model.path,
                       cfg.model.embedded), rollout=cfg.model.rollout, lora=cfg.model.lora, global_vector=vec,
                       pool=data.train, eval_set=data.eval, reward=own.reward, grpo=cfg.grpo,
                       eval_sampling=SamplingSpec(cfg.eval.max_new_tokens, cfg.eval.temperature),
                       seed=derive_seed(cfg.seed, "train", name, spec.round), threads=1, device=cfg.model.device)
        delta = run_training(job).delta.astype(np.float64)
        train_s = time.perf_counter() - t
        delta *= min(1.0, cfg.federation.delta_clip / max(float(np.linalg.norm(delta)), 1e-30))
        sc = make_backend("masked", opts).client(name, spec, client_state_dir(keys, name))
        sc.set_input(np.concatenate([delta, [1.0]]))
        context.state["sim"] = ConfigRecord({"client": dump_client(sc)})
        return _reply(msg, Envelope(env.round, "train", "ready", seconds=time.perf_counter() - t,
                                    train_seconds=train_s))

    def stage_handler(msg: Message, context: Context) -> Message:
        from secure_fgrpo.flower.state import dump_client, load_client
        from secure_fgrpo.secure_sum.base import SERVER
        from secure_fgrpo.secure_sum.base import Message as SumMessage
        from secure_fgrpo.secure_sum.masked import client_state_dir

        stage = msg.metadata.message_type.split(".", 1)[1]
        env = Envelope.from_content(msg.content, stage)
        name = names[int(context.node_config["partition-id"])]
        t = time.perf_counter()
        rec = context.state["sim"]
        assert isinstance(rec, ConfigRecord) and isinstance(rec["client"], bytes)
        sc = load_client(rec["client"], client_state_dir(keys, name))
        inbound = SumMessage(env.round, stage, SERVER, name, env.kind, env.payload) if env.kind else None
        out = sc.respond(stage, inbound)
        context.state["sim"] = ConfigRecord({"client": dump_client(sc)})
        assert out is not None
        return _reply(msg, Envelope(env.round, stage, out.kind, out.payload, seconds=time.perf_counter() - t))

    from secure_fgrpo.secure_sum.masked.context import STAGES

    for stage in STAGES:
        client_app.query(stage)(stage_handler)
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        from secure_fgrpo.federation.local import initial_adapter
        from secure_fgrpo.federation.server import Server
        from secure_fgrpo.model.load import resolve_model_path
        from secure_fgrpo.model.vector import to_vector
        from secure_fgrpo.secure_sum.base import SERVER
        from secure_fgrpo.secure_sum.base import Message as SumMessage
        from secure_fgrpo.secure_sum.driver import process_stage
        from secure_fgrpo.secure_sum.masked import server_state_dir

        model, _, layout = initial_adapter(cfg, resolve_model_path(cfg.model.path, cfg.model.embedded))
        vector = to_vector(model, layout).astype(np.float32)
        del model
        link, server = FlowerLink(grid, 0.05), Server(Path(root) / "server", cfg, names)
        res: dict[str, Any] = {"rounds": []}
        t = time.perf_counter()
        while len(ids := list(grid.get_node_ids())) < size:
            time.sleep(0.5)
        got, st = link.exchange("hello", 0, {n: Envelope(0, "hello") for n in ids}, 3600)
        node = {env.payload.decode(): nid for nid, env in got.items()}
        res["hello_s"], res["connect_and_hello_s"] = st.seconds, time.perf_counter() - t
        for r in range(1, rounds + 1):
            t = time.perf_counter()
            sampled = server.participants(r)
            spec = server.sum_spec(r, sampled, layout.size)
            head = json.dumps({**spec.__dict__, "participants": list(spec.participants)})
            got, st = link.exchange("train", r, {node[n]: Envelope(r, "train", head, vector.tobytes())
                                                 for n in sampled}, 3600)
            row: dict[str, Any] = {"round": r, "sampled": len(sampled), "dim": spec.dim, "stages": {"train": st.seconds},
                                   "train_cpu_s": sorted(e.train_seconds for e in got.values()),
                                   "bytes": {"train": [st.bytes_out, st.bytes_in]}}
            live = {n: node[n] for n in sampled if node[n] in got}
            ss = make_backend("masked", opts).server(spec, server_state_dir(keys))
            gone: set[str] = set(sampled) - set(live)
            replies: dict[str, Any] = {}
            for i, stage in enumerate(ss.stages):
                outm = {nid: Envelope(r, stage, replies[n].kind, replies[n].payload) if i else Envelope(r, stage)
                        for n, nid in live.items() if n not in gone and (i == 0 or n in replies)}
                got, st = link.exchange(stage, r, outm, 600)
                by = {nid: n for n, nid in live.items()}
                inbound = {by[nid]: SumMessage(r, stage, by[nid], SERVER, e.kind, e.payload) for nid, e in got.items()}
                gone |= {by[nid] for nid in outm} - set(inbound)
                ts = time.perf_counter()
                replies = process_stage(ss, stage, inbound, gone)
                row["stages"][stage] = st.seconds
                row["stages"][f"server:{stage}"] = time.perf_counter() - ts
                row["bytes"][stage] = [st.bytes_out, st.bytes_in]
            outcome = ss.outcome()
            if outcome.total is None:
                raise RuntimeError(f"engine round {r}: {outcome.reason}")
            vector += (np.asarray(outcome.total[:-1]) / outcome.total[-1]).astype(np.float32)
            row.update(contributors=len(outcome.contributors), wall_s=time.perf_counter() - t)
            res["rounds"].append(row)
            log.info("engine round %d: %.1f s, %d contributors", r, row["wall_s"], row["contributors"])
        out_path.write_text(json.dumps(res))

    t0 = time.perf_counter()
    with TreeMemory() as mem:
        run_simulation(server_app, client_app, num_supernodes=size,
                       backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                       "init_args": {"num_cpus": 2, "include_dashboard": False}})
    if not out_path.exists():
        raise RuntimeError("the simulation ended without the ServerApp's result (see the log)")
    res = json.loads(out_path.read_text())
    res.update(wall_s=time.perf_counter() - t0, keys_s=keys_s, peak_tree_rss_gib=mem.peak / 2**30)
    return res


def _spawned(fn: Any, *args: Any) -> Any:
    """Each side in a fresh process: separate peaks, nothing shared."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as one:
        return one.submit(fn, *args).result()


def write_markdown(path: Path, res: dict[str, Any]) -> None:
    pool, eng = res.get("pool"), res.get("engine")
    lines = ["# Flower Simulation Engine vs the project's process pool", "", "    " + res["command"], "",
             f"**Choice: {res['choice']}**", "",
             "| side | clients | sampled | rounds | wall (s) | s / round (each) | train stage s (each) | "
             "rest of the round s (each) | setup s | peak tree RSS (GiB) |", "|" + "---|" * 10]
    if pool:
        lines.append(f"| process pool (`Federation.run`) | {pool['size']} | {pool['per_round']} | {pool['rounds']} | "
                     f"{pool['wall_s']:.0f} | {' / '.join(f'{x:.1f}' for x in pool['round_s'])} | "
                     f"{' / '.join(f'{x:.1f}' for x in pool.get('train_s', []))} | "
                     f"{' / '.join(f'{a - b:.1f}' for a, b in zip(pool['round_s'], pool.get('train_s', []), strict=False))} | "
                     f"{pool['setup_s']:.1f} | {pool['peak_tree_rss_gib']:.2f} |")
    if eng:
        rs = eng["rounds"]
        sums = [sum(v for k, v in r["stages"].items() if k != "train" and not k.startswith("server:")) for r in rs]
        walls = " / ".join(format(r["wall_s"], ".1f") for r in rs)
        trains = " / ".join(format(r["stages"]["train"], ".1f") for r in rs)
        lines.append(f"| Flower Simulation Engine (Ray) | {res['size']} | {res['per_round']} | {len(rs)} | "
                     f"{eng['wall_s']:.0f} | {walls} | {trains} | {' / '.join(f'{x:.1f}' for x in sums)} | "
                     f"{eng['keys_s'] + eng['connect_and_hello_s']:.1f} | {eng['peak_tree_rss_gib']:.2f} |")
        lines += ["", "Engine, seconds per stage of each round (wall of the exchange; server: its own processing):", ""]
        keys = list(rs[0]["stages"])
        lines += ["| round | " + " | ".join(keys) + " |", "|" + "---|" * (1 + len(keys))]
        lines += [f"| {r['round']} | " + " | ".join(f"{r['stages'][k]:.2f}" for k in keys) + " |" for r in rs]
    if eng:
        lines += ["", (f"Engine setup: {eng['keys_s']:.0f} s for the {res['size']} identity keys and roster, "
                       f"{eng['connect_and_hello_s']:.0f} s to start Ray and name the {res['size']} virtual nodes "
                       "(one message each).")]
    lines += ["", *NOTES, *res["notes"], "", f"Machine: {res['machine']}. Raw numbers: {path.stem}.json.", ""]
    path.write_text("\n".join(lines))


NOTES = [
    ("- Rest of the round: pool, everything after the last client's local step (the masked sum over the "
     "in-process transport, FGRPO's gain and update, checkpoint, the global evaluation on 50 prompts); engine, "
     "the five masked stages over Flower messages (the adapter here is 6,145 parameters, so they are nearly "
     "all per-message overhead: ~2-3 s a stage for 50 nodes on 2 actors, server processing ≤ 0.2 s)."),
    ("- Train stage: the same local GRPO job (federation/local.py run_training) for the same sampled clients; "
     "pool: 2 worker processes; engine: 2 Ray actors, each ClientApp call building its client's data by "
     "partition id."),
    "- Peak tree RSS: the driver plus every descendant (pool workers; Ray's GCS, raylet and workers), summed.",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--per-round", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sides", default="engine,pool")
    ap.add_argument("--quick", action="store_true", help="the test model, 40 clients, 4 a round")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--render", type=Path, help="re-write the markdown from this JSON (no measuring)")
    args = ap.parse_args(argv)
    if args.render:
        write_markdown(args.render.with_suffix(".md"), json.loads(args.render.read_text()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.quick:
        args.size, args.per_round = 40, 4
    out = args.out or (Path(tempfile.gettempdir()) / "sim_engine_quick" if args.quick else RESULTS)
    from secure_fgrpo.model.load import resolve_model_path

    cfg = scale_config(args.size, args.per_round, args.rounds, quick=args.quick)
    resolve_model_path(cfg.model.path, cfg.model.embedded)  # build/cache the model before timing
    res: dict[str, Any] = {
        "command": shlex.join([os.path.relpath(sys.executable, HERE.parent), os.path.relpath(sys.argv[0], HERE.parent),
                               *sys.argv[1:]]),
        "size": args.size, "per_round": args.per_round, "rounds": args.rounds, "notes": [],
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs shared with other jobs, load "
                   f"{os.getloadavg()[0]:.1f} at start"}
    with tempfile.TemporaryDirectory(prefix="sim-engine-") as root:
        for side in args.sides.split(","):
            try:
                if side == "pool":
                    res["pool"] = _spawned(run_population, args.size, args.per_round, args.rounds, "fixed",
                                           args.quick, root)
                elif side == "engine":
                    res["engine"] = _spawned(engine_worker, args.size, args.per_round, args.rounds, args.quick,
                                             str(Path(root) / "engine"))
            except Exception as err:  # one side's failure keeps the other's numbers
                res["notes"].append(f"- {side}: no result ({type(err).__name__}: {str(err)[:300]})")
                log.exception("%s failed", side)
    res["choice"] = choose(res)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_engine.json").write_text(json.dumps(res, indent=1))
    write_markdown(out / "sim_engine.md", res)
    log.info("wrote %s/sim_engine.{json,md}", out)
    return 0


def choose(res: dict[str, Any]) -> str:
    """Which the package uses, from this run's numbers: the faster steady round at no more memory."""
    pool, eng = res.get("pool"), res.get("engine")
    if not pool or not eng:
        return "the process pool (the engine side did not finish)" if pool else "undecided (the pool side failed)"
    p, e = pool["round_s"][-1], eng["rounds"][-1]["wall_s"]
    pm, em = pool["peak_tree_rss_gib"], eng["peak_tree_rss_gib"]
    faster = "pool" if p <= e else "engine"
    return (f"the {'process pool' if faster == 'pool' else 'Simulation Engine'}: last round {p:.0f} s (pool) vs "
            f"{e:.0f} s (engine), peak {pm:.2f} vs {em:.2f} GiB")


if __name__ == "__main__":
    sys.exit(main())
