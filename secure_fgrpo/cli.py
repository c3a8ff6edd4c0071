"""``secure-fgrpo demo | run | eval``: the only module that prints."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import RunConfig, config_from_dict, load_config
from .configio import ConfigError, to_dict
from .report import accuracy_curves, load_run_config, plot_accuracy, save_run_config

console = Console()


def _run(cfg: RunConfig, run_dir: Path) -> int:
    from .federation.runner import Federation

    save_run_config(run_dir, to_dict(cfg))
    t0 = time.perf_counter()
    n_clients = max(2, round(cfg.federation.fraction * len(cfg.clients)))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        rounds = progress.add_task("rounds", total=cfg.federation.rounds)
        clients = progress.add_task("clients", total=n_clients)
        progress.update(rounds, description="building / loading the model")

        def on_event(kind: str, info: dict) -> None:
            if kind == "round_start":
                progress.reset(clients, total=len(info["participants"]))
                progress.update(rounds, description=f"round {info['round']}")
            elif kind == "client_done":
                progress.advance(clients)
            elif kind == "round":
                progress.update(rounds, completed=info["round"])
                acc = info.get("global_accuracy")
                if acc is not None:
                    progress.console.print(f"round {info['round']}: global held-out accuracy {acc:.1%}"
                                           + (" (aborted)" if info.get("aborted") else ""))

        fed = Federation(cfg, run_dir, on_event)
        progress.update(rounds, completed=fed.server.last_completed_round)
        fed.run()
    _print_summary(run_dir, time.perf_counter() - t0)
    return 0


def _print_summary(run_dir: Path, seconds: float | None = None) -> None:
    glob, per = accuracy_curves(run_dir)
    table = Table(title=f"held-out accuracy (sampled pass@1, T=1) — {run_dir}")
    table.add_column("round", justify="right")
    table.add_column("global", justify="right")
    for name in per:
        table.add_column(name, justify="right")
    for r in sorted(glob):
        table.add_row(str(r), f"{glob[r]:.1%}", *[f"{per[n][r]:.1%}" if r in per[n] else "" for n in per])
    console.print(table)
    if glob:
        first, last = min(glob), max(glob)
        console.print(f"global accuracy: round {first} {glob[first]:.1%} -> round {last} {glob[last]:.1%} "
                      f"({(glob[last] - glob[first]) * 100:+.1f} points)")
    png = plot_accuracy(run_dir)
    console.print(f"plot: {png}\nglobal adapter: {run_dir / 'server' / 'global_adapter'}")
    if seconds is not None:
        console.print(f"wall time: {seconds:.0f} s")


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_config

    overrides: dict = {"secure_sum.backend": args.secure_sum, "seed": args.seed}
    if args.reveal:
        if args.secure_sum != "ckks":
            raise ValueError("--reveal applies to --secure-sum ckks only")
        overrides["secure_sum.options"] = {"reveal": args.reveal}
    if args.rounds:
        overrides["federation.rounds"] = args.rounds
    if args.workers:
        overrides["federation.workers"] = args.workers
    cfg = demo_config(**overrides)
    run_dir = Path(args.out or f"runs/demo-{args.secure_sum}" + (f"-{args.reveal}" if args.reveal else ""))
    if run_dir.exists() and not args.resume:
        shutil.rmtree(run_dir)
    console.print(f"[bold]secure_fgrpo demo[/]: {len(cfg.clients)} institutions, strategy "
                  f"{cfg.federation.strategy}, secure sum {cfg.secure_sum.backend}, {cfg.federation.rounds} rounds")
    return _run(cfg, run_dir)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    return _run(cfg, Path(args.out or Path("runs") / Path(args.config).stem))


def cmd_eval(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    cfg = config_from_dict(load_run_config(run_dir))
    from .federation.runner import Federation

    fed = Federation(cfg, run_dir)
    acc = fed.evaluate_global(fed.server.last_completed_round)
    _print_summary(run_dir)
    console.print(f"re-evaluated global adapter of round {fed.server.last_completed_round}: {acc:.1%}")
    return 0


def cmd_keys_init(args: argparse.Namespace) -> int:
    """Create a federation's keys before the first round: each client's secret material in its
    own folder (0600), the server's public part in server/keys. The run then reuses them."""
    from .federation.runner import _backend_options
    from .secure_sum import make_backend

    cfg = load_config(args.config)
    run_dir = Path(args.out or Path("runs") / Path(args.config).stem)
    backend = make_backend(cfg.secure_sum.backend, _backend_options(cfg))
    backend.setup(run_dir, [c.name for c in cfg.clients])
    save_run_config(run_dir, to_dict(cfg))
    console.print(f"keys for the {cfg.secure_sum.backend!r} backend created under {run_dir} "
                  f"(server: {run_dir / 'server' / 'keys'}, clients: {run_dir / 'clients'}/<name>/keys)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="secure-fgrpo", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="four institutions, FGRPO, secure sum")
    d.add_argument("--secure-sum", default="plaintext", choices=["plaintext", "masked", "ckks"])
    d.add_argument("--reveal", default="", choices=["", "server-learns-sum", "server-blind"],
                   help="ckks only: who learns the sums (default server-learns-sum)")
    d.add_argument("--rounds", type=int, default=0)
    d.add_argument("--workers", type=int, default=0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="")
    d.add_argument("--resume", action="store_true", help="continue an interrupted demo instead of starting over")
    d.set_defaults(fn=cmd_demo)
    r = sub.add_parser("run", help="run a federation from a TOML config (resumes if RUN exists)")
    r.add_argument("config")
    r.add_argument("--out", default="")
    r.set_defaults(fn=cmd_run)
    e = sub.add_parser("eval", help="re-evaluate a run's global adapter and show its curves")
    e.add_argument("run")
    e.set_defaults(fn=cmd_eval)
    k = sub.add_parser("keys", help="key custody")
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    ki = ksub.add_parser("init", help="create the federation's keys for CONFIG's secure-sum backend")
    ki.add_argument("config")
    ki.add_argument("--out", default="")
    ki.set_defaults(fn=cmd_keys_init)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except ConfigError as err:
        console.print(f"[red]error:[/] {err}")
        return 2
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]error:[/] {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
