"""``secure-fgrpo demo | run | eval | model | keys | audit``: the only module that prints."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .configio import ConfigError, to_dict
from .deploy.cli import register as register_deploy
from .errors import RunFailed, RunFolderError, UserError
from .keys_cli import register as register_keys
from .report import accuracy_curves, load_run_config, plot_accuracy, server_rows
from .runfolder import Mode, open_run_folder

if TYPE_CHECKING:
    from .config import RunConfig

# config and demo import the training stack (torch, peft: tens of seconds on a busy machine);
# they are imported where a run needs them, so `keys` and `deploy` start at once.
console = Console()


def _run(cfg: RunConfig, run_dir: Path, mode: Mode, per_family: bool = False) -> int:
    """Run (or continue) ``cfg`` in ``run_dir``; ``per_family`` prints the base model's held-out
    accuracy per family (per calculator) from round 0's evaluation, to read the gain against."""
    from .federation.runner import Federation

    open_run_folder(run_dir, to_dict(cfg), mode)
    t0 = time.perf_counter()
    n_clients = max(2, round(cfg.federation.fraction * len(cfg.clients)))
    plain = not console.is_terminal  # a log file or CI: rich's bars would print nothing until the end
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=plain) as progress:
        rounds = progress.add_task("rounds", total=cfg.federation.rounds)
        clients = progress.add_task("clients", total=n_clients)
        progress.update(rounds, description="building / loading the model")
        if plain:
            console.print("building / loading the model")

        def on_event(kind: str, info: dict) -> None:
            if kind == "round_start":
                progress.reset(clients, total=len(info["participants"]))
                progress.update(rounds, description=f"round {info['round']}")
                if plain:
                    console.print(f"round {info['round']}/{cfg.federation.rounds} started: "
                                  f"{', '.join(info['participants'])} training")
            elif kind == "client_done":
                progress.advance(clients)
                if plain:
                    console.print(f"round {info['round']}: {info['client']} done")
            elif kind == "round":
                if per_family and info["round"] == 0 and "by_family" in info:
                    progress.console.print(_baseline_table(info["by_family"], fed.eval_sampling.temperature))
                progress.update(rounds, completed=info["round"])
                acc = info.get("global_accuracy")
                if acc is not None:
                    progress.console.print(f"round {info['round']}: global held-out accuracy {acc:.1%}"
                                           + (f" (aborted: {info.get('reason', '')})" if info.get("aborted") else "")
                                           + _privacy_note(run_dir, info))
            elif kind == "budget_exhausted":
                progress.console.print(f"[yellow]stopped:[/] {info['reason']}")

        fed = Federation(cfg, run_dir, on_event)
        done = fed.server.last_completed_round
        if done and done < cfg.federation.rounds:
            progress.console.print(f"resuming from round {done + 1} of {cfg.federation.rounds} "
                                   f"(rounds 1-{done} already done in {run_dir})")
        elif done == cfg.federation.rounds:
            progress.console.print(f"all {done} rounds already done in {run_dir}; nothing to train")
        progress.console.print(f"global held-out set: {fed.data.describe_global_eval()}")
        progress.update(rounds, completed=done)
        fed.run()
    failed = _all_aborted(run_dir)
    _print_summary(run_dir, time.perf_counter() - t0, gain=not failed)
    if failed:
        raise RunFailed(failed)
    return 0


def _all_aborted(run_dir: Path) -> str:
    """Why the run trained nothing (every round aborted), or "". A run that trained nothing is a
    failure, not "+0.0 points"; some aborted rounds are a warning."""
    rows = server_rows(run_dir)
    aborted = {r["round"]: r.get("reason", "") for r in rows if r.get("aborted")}
    if rows and len(aborted) == len(rows):
        return (f"every round ({len(rows)}) aborted, so the global adapter is the initial one: "
                + "; ".join(sorted(set(aborted.values()))))
    if aborted:
        console.print(f"[yellow]warning:[/] {len(aborted)} of {len(rows)} rounds aborted "
                      f"(rounds {', '.join(map(str, sorted(aborted)))}): {'; '.join(sorted(set(aborted.values())))}")
    return ""


def _privacy_note(run_dir: Path, info: dict) -> str:
    """ε spent so far: client level from the server's row, example level from the clients' own
    metrics (the demo operator plays every party, so it may read them)."""
    parts = []
    if "dp_client_epsilon" in info:
        parts.append(f"client-level ε={info['dp_client_epsilon']:.2f} (δ={info['dp_client_delta']:g})")
    eps = []
    for path in sorted((run_dir / "clients").glob("*/metrics.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        eps += [(row["dp_example_epsilon"], row["dp_example_delta"]) for row in rows
                if row.get("round") == info["round"] and "dp_example_epsilon" in row]
    if eps:
        parts.append(f"example-level ε≤{max(e for e, _ in eps):.2f} (δ={eps[0][1]:g})")
    return ("; " + ", ".join(parts)) if parts else ""


def _dp_overrides(specs: list[str], backend: str, gpu: bool = False) -> dict:
    """``--dp example:8`` / ``--dp client:8[:local|distributed|skellam]`` -> config overrides.
    Example-level DP-SGD brings the demo's DP-tuned settings (demo.DP_SGD_SETTINGS), with the
    larger Poisson batch a GPU affords when ``gpu``."""
    from .demo import DP_SGD_EXAMPLE_LEVEL, DP_SGD_EXAMPLE_LEVEL_GPU, DP_SGD_SETTINGS

    out: dict = {}
    for spec in specs:
        kind, _, rest = spec.partition(":")
        eps, _, mechanism = rest.partition(":")
        if kind not in ("example", "client") or not eps:
            raise ValueError(f"--dp {spec!r}: expected example:EPS or client:EPS[:local|distributed|skellam]")
        try:
            section: dict = {"epsilon": float(eps)}
        except ValueError:
            raise ValueError(f"--dp {spec!r}: {eps!r} is not a number") from None
        if kind == "client":  # masked: integer noise in its words, so the guarantee covers what it decodes
            section["mechanism"] = mechanism or {"plaintext": "local", "masked": "skellam"}.get(backend, "distributed")
        elif mechanism:
            raise ValueError(f"--dp {spec!r}: example-level DP has no mechanism to choose")
        else:
            section.update(DP_SGD_EXAMPLE_LEVEL_GPU if gpu else DP_SGD_EXAMPLE_LEVEL)
            out.update(DP_SGD_SETTINGS)
        out[f"privacy.{kind}_level"] = section
    return out


def _print_summary(run_dir: Path, seconds: float | None = None, gain: bool = True) -> None:
    glob, per = accuracy_curves(run_dir)
    temperature = load_run_config(run_dir).get("eval", {}).get("temperature", 1.0)
    table = Table(title=f"held-out accuracy (sampled pass@1, T={temperature:g}) — {run_dir}")
    table.add_column("round", justify="right")
    table.add_column("global", justify="right")
    for name in per:
        table.add_column(name, justify="right")
    for r in sorted(glob):
        table.add_row(str(r), f"{glob[r]:.1%}", *[f"{per[n][r]:.1%}" if r in per[n] else "" for n in per])
    console.print(table)
    about = run_dir / "global_eval.json"
    if about.exists():
        console.print(f"global = the global adapter on {json.loads(about.read_text())['about']}")
    if glob and gain:
        first, last = min(glob), max(glob)
        console.print(f"global accuracy: round {first} {glob[first]:.1%} -> round {last} {glob[last]:.1%} "
                      f"({(glob[last] - glob[first]) * 100:+.1f} points)")
    png = plot_accuracy(run_dir)
    console.print(f"plot: {png}\nglobal adapter: {run_dir / 'server' / 'global_adapter'}")
    if seconds is not None:
        console.print(f"wall time: {seconds:.0f} s")


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DP_SGD_SETTINGS, REAL_DEMO_GPU, demo_config
    from .model.device import resolve_device

    real = args.model != "embedded"
    gpu = resolve_device(args.device).type == "cuda"
    if args.secure_sum is None:
        args.secure_sum = "masked" if real else "plaintext"
    overrides: dict = dict(REAL_DEMO_GPU) if real and gpu else {}
    overrides.update({"secure_sum.backend": args.secure_sum, "seed": args.seed, "model.device": args.device})
    if real and args.dp:
        raise ValueError(f"--dp: the {args.model} demo is not sized for DP (use a config file: README, "
                         "'Differential privacy')")
    if args.reveal:
        if args.secure_sum != "ckks":
            raise ValueError("--reveal applies to --secure-sum ckks only")
        overrides["secure_sum.options"] = {"reveal": args.reveal}
    if args.rounds is not None:  # 0 is refused by the config, not read as "the default"
        overrides["federation.rounds"] = args.rounds
    if args.workers is not None:
        overrides["federation.workers"] = args.workers
    overrides.update(_dp_overrides(args.dp, args.secure_sum, gpu=gpu))
    cfg = demo_config(args.model, **overrides)
    run_dir = Path(args.out or "runs/demo-" + (f"{args.model}-" if real else "") + args.secure_sum
                   + (f"-{args.reveal}" if args.reveal else ""))
    console.print(f"[bold]secure_fgrpo demo[/]: {len(cfg.clients)} institutions, strategy "
                  f"{cfg.federation.strategy}, secure sum {cfg.secure_sum.backend}, {cfg.federation.rounds} rounds"
                  + (f", model {cfg.model.path} on {args.device}" if real else ""))
    if cfg.privacy.example_level is not None:
        ex = cfg.privacy.example_level
        tuned = {**DP_SGD_SETTINGS, "privacy.example_level.max_grad_norm": ex.max_grad_norm,
                 "privacy.example_level.sample_rate": ex.sample_rate}
        console.print("example-level DP-SGD with the demo's DP-tuned settings: "
                      + ", ".join(f"{k}={v}" for k, v in tuned.items()))
    return _run(cfg, run_dir, _mode(args), per_family=real)


def _baseline_table(by_family: dict[str, dict], temperature: float) -> Table:
    """The base model's held-out accuracy per calculator (round 0, before any training)."""
    table = Table(title=f"base model (no training), held-out accuracy per calculator "
                        f"(sampled pass@1, T={temperature:g})")
    for col in ("calculator", "prompts", "accuracy"):
        table.add_column(col, justify="left" if col == "calculator" else "right")
    for fam, row in by_family.items():
        table.add_row(fam, str(row["prompts"]), f"{row['accuracy']:.0%}")
    return table


def _mode(args: argparse.Namespace) -> Mode:
    """A run of the same config is continued (a finished one just shows its results again);
    ``--fresh`` starts over."""
    if getattr(args, "resume", False) and args.fresh:
        raise RunFolderError("--resume and --fresh: choose one")
    return "fresh" if args.fresh else "resume"


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.config)
    return _run(cfg, Path(args.out or Path("runs") / Path(args.config).stem), _mode(args))


def cmd_eval(args: argparse.Namespace) -> int:
    """Re-score the run's global adapter on its global held-out set, or on a data file's rows
    (saying how many of them the run, or the embedded model's warm start, trained on)."""
    from .config import config_from_dict
    from .data.local import load_problems
    from .federation.runner import Federation
    from .model.load import EMBEDDED
    from .model.tiny import warm_start_prompts

    run_dir = Path(args.run)
    cfg = config_from_dict(load_run_config(run_dir))
    rows = load_problems(args.data) if args.data else None
    fed = Federation(cfg, run_dir)
    r = fed.server.last_completed_round
    if rows is None:
        acc = fed.evaluate_global(r)
        _print_summary(run_dir)
        console.print(f"re-evaluated global adapter of round {r}: {acc:.1%} on the global held-out set "
                      f"({fed.data.describe_global_eval()})")
        return 0
    acc = fed.evaluate_global(r, rows)
    prompts = [p.prompt for p in rows]
    trained_on = fed.training_prompts()
    trained = sum(p in trained_on for p in prompts)
    notes = [f"{trained} are training prompts of this run" if trained else "none is a training prompt of this run"]
    if cfg.model.path == EMBEDDED:
        warm = warm_start_prompts(cfg.model.embedded)
        seen = sum(p in warm for p in prompts)
        notes.append(f"{seen} were in the embedded model's warm start" if seen
                     else "none was in the embedded model's warm start")
    console.print(f"global adapter of round {r} on {args.data}: {acc:.1%} (sampled pass@1, "
                  f"T={cfg.eval.temperature:g}) over {len(rows)} rows; of them " + ", ".join(notes))
    return 0


class _ModelNames:
    """The `model` command's choices, read only when that command is parsed: model.sources
    imports transformers, which `keys` and `deploy` must not wait for."""

    def _names(self) -> list[str]:
        from .model.sources import SOURCES

        return sorted(SOURCES)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def cmd_model(args: argparse.Namespace) -> int:
    """Find a named model's weights, convert them once into the cache, print the folder: the
    base model a run's exported adapter belongs to (PeftModel.from_pretrained on this folder)."""
    from .model.load import resolve_model_path

    folder = resolve_model_path(args.name)
    console.print(f"{args.name}: {folder}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """What the server learned: reads RUN/server/ (and the public RUN/config.json) only."""
    from .audit.dp_section import dp_summary_lines
    from .audit.keyscan import KnownSecret
    from .audit.runner import audit_run

    known = [KnownSecret(Path(f).name, Path(f).read_bytes()) for f in args.known_secret]
    run_dir = Path(args.run)
    report = audit_run(run_dir, Path(args.out) if args.out else None, attacks=not args.no_attacks,
                       known_secrets=known)
    s = report["summary"]
    table = Table(title=f"audit of {run_dir} (backend {report['backend']['configured']})")
    table.add_column("what")
    table.add_column("result")
    table.add_row("per-client data in clear", "[red]YES[/]" if s["per_client_plaintext"] else "[green]none found[/]")
    table.add_row("flags", f"{s['high_flags']} high, {s['warnings']} warnings")
    for c in report["checks"]:
        table.add_row(f"check {c['name']}", f"{c['status']}: {c['summary']}")
    for name, verdict in s["attacks"].items():
        table.add_row(f"attack {name}", verdict)
    dp = report["dp"]
    for label, line in dp_summary_lines(dp):
        table.add_row(label, line)
    console.print(table)
    out = Path(args.out) if args.out else run_dir / "audit"
    console.print(f"report: {out / 'report.html'} (and report.json)")
    return 1 if args.strict and (s["high_flags"] or s["checks_failed"]) else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="secure-fgrpo", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="four institutions, FGRPO, secure sum (--model smollm2: a real pretrained "
                                    "model on clinical calculations)")
    d.add_argument("--model", default="embedded", choices=["embedded", "smollm2"],
                   help="embedded (default): the 1M-parameter model on arithmetic-style tasks, ~2 min; smollm2: "
                        "SmolLM2-135M-Instruct (the 'real' extra) on MedCalc-Bench rule-based scores (each "
                        "criterion's points given, the total asked) by four hospitals by specialty, masked "
                        "secure sum, base accuracy per calculator first; sized for 2 CPU cores, larger with "
                        "--device cuda")
    d.add_argument("--secure-sum", default=None, choices=["plaintext", "masked", "ckks"],
                   help="default plaintext (embedded), masked (smollm2)")
    d.add_argument("--reveal", default=None, choices=["server-learns-sum", "server-blind"],
                   help="ckks only: who learns the sums (default server-learns-sum)")
    d.add_argument("--rounds", type=int, default=None, help="federation.rounds (default 6; smollm2: 3)")
    d.add_argument("--workers", type=int, default=None, help="federation.workers (default 2; smollm2: 1, both threads)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu",
                   help="model.device: cpu (default), auto, cuda or cuda:N (smollm2 on cuda: a larger "
                        "federation, demo.REAL_DEMO_GPU; untested on a GPU)")
    d.add_argument("--out", default="")
    d.add_argument("--dp", action="append", default=[], metavar="KIND:EPS",
                   help="differential privacy, δ=1e-5: example:EPS (DP-SGD per patient record) or "
                        "client:EPS[:local|distributed|skellam] (noise per institution; skellam: integer "
                        "noise inside --secure-sum masked); repeatable")
    d.add_argument("--resume", action="store_true",
                   help="continue the demo run in --out (the default when it holds one of the same config)")
    d.add_argument("--fresh", action="store_true",
                   help="start --out over: deletes only the files secure_fgrpo wrote there")
    d.set_defaults(fn=cmd_demo)
    r = sub.add_parser("run", help="run a federation from a TOML config (resumes if RUN exists)")
    r.add_argument("config")
    r.add_argument("--out", default="")
    r.add_argument("--fresh", action="store_true",
                   help="start RUN over instead of resuming it: deletes only the files secure_fgrpo wrote there")
    r.set_defaults(fn=cmd_run)
    e = sub.add_parser("eval", help="re-evaluate a run's global adapter and show its curves, "
                                    "or score it on a data file")
    e.add_argument("run")
    e.add_argument("--data", default="", metavar="FILE",
                   help="score the global adapter on FILE's rows (JSONL/Parquet with prompt, answer, kind)")
    e.set_defaults(fn=cmd_eval)
    mo = sub.add_parser("model", help="prepare a named pretrained model (convert once) and print its folder")
    mo.add_argument("name", choices=_ModelNames(), metavar="NAME", help="a named source (model/sources.py)")
    mo.set_defaults(fn=cmd_model)
    register_keys(sub)
    au = sub.add_parser("audit", help="what the server learned: inventory, checks, attacks -> RUN/audit/report.html")
    au.add_argument("run")
    au.add_argument("--out", default="", help="output folder (default RUN/audit)")
    au.add_argument("--no-attacks", action="store_true", help="skip the attack simulation")
    au.add_argument("--known-secret", action="append", default=[], metavar="FILE",
                    help="a secret of your own institution to look for in RUN/server/ (repeatable)")
    au.add_argument("--strict", action="store_true", help="exit 1 on a high flag or a failed check")
    au.set_defaults(fn=cmd_audit)
    register_deploy(sub, console.print)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except UserError as err:
        _error(str(err))
        return err.exit_code
    except (ConfigError, FileNotFoundError, ValueError) as err:
        _error(str(err))
        return 2
    except OSError as err:  # a full disk, a read-only folder: name the file, keep no traceback
        _error(f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err))
        return 2
    except KeyboardInterrupt:
        _error("interrupted; the run resumes from its last completed round when started again")
        return 130


def _error(message: str) -> None:
    console.print("[red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False, soft_wrap=True)  # one line, even in a log file


if __name__ == "__main__":
    sys.exit(main())
