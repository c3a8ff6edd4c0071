"""Mutation pass over the project's formulas: does the fast test subset notice a wrong formula?

A tool, not a test (pytest never collects it: no ``test_`` prefix). Each mutant is one textual
edit (flip a sign, swap two constants, change a normaliser) to one of the formula files. The
repository is copied to a temporary directory once; every mutant is applied to that copy only
(the working tree is never edited, so an interrupted pass leaves nothing behind), the chosen
test files run there with ``-x``, and a markdown record says which mutants were killed.

    nice -n 10 .venv/bin/python tests/mutation/run_mutants.py            # default test subset
    nice -n 10 .venv/bin/python tests/mutation/run_mutants.py --tests tests/test_gain.py --out /tmp/m.md
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("mutation")
ROOT = Path(__file__).resolve().parents[2]
# Fast files only (no model training): seconds per mutant.
DEFAULT_TESTS = ("tests/test_gain.py", "tests/test_grpo_math.py", "tests/test_gain_formulas.py",
                 "tests/test_grpo_formulas.py", "tests/test_federation_formulas.py")
GAIN, ADV, LOSS = "secure_fgrpo/gain.py", "secure_fgrpo/grpo/advantages.py", "secure_fgrpo/grpo/loss.py"
UPDATE, CLIENT = "secure_fgrpo/federation/update.py", "secure_fgrpo/federation/client.py"


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    mutated: str
    what: str


MUTANTS: tuple[Mutant, ...] = (
    # --- gain.py: the relative gain, its state, the weight and its bound
    Mutant("G1", GAIN, "baseline=cfg.beta * state.baseline + (1 - cfg.beta) * reward",
           "baseline=(1 - cfg.beta) * state.baseline + cfg.beta * reward", "swap β and 1-β in the baseline EMA"),
    Mutant("G2", GAIN, "deviation=cfg.beta * state.deviation + (1 - cfg.beta) * abs(diff)",
           "deviation=(1 - cfg.beta) * state.deviation + cfg.beta * abs(diff)",
           "swap β and 1-β in the deviation EMA"),
    Mutant("G3", GAIN, "(1 - cfg.beta) * abs(diff)", "(1 - cfg.beta) * diff", "deviation EMA drops |·| (signed)"),
    Mutant("G4", GAIN, "diff / (scale + cfg.eps)", "diff / scale", "gain normaliser drops ε"),
    Mutant("G5", GAIN, "diff / (scale + cfg.eps)", "diff / (scale - cfg.eps)", "gain normaliser subtracts ε"),
    Mutant("G6", GAIN, 'scale = state.deviation if cfg.kind == "zscore" else abs(state.baseline)',
           'scale = abs(state.baseline) if cfg.kind == "zscore" else state.deviation',
           "zscore and ratio normalisers swapped"),
    Mutant("G7", GAIN, "else abs(state.baseline)", "else state.baseline", "ratio normaliser b instead of |b|"),
    Mutant("G8", GAIN, "diff = reward - state.baseline", "diff = state.baseline - reward", "gain sign flipped"),
    Mutant("G9", GAIN, "gain = max(-cfg.clip, min(cfg.clip, diff / (scale + cfg.eps)))",
           "gain = min(cfg.clip, diff / (scale + cfg.eps))", "lower clip -G dropped"),
    Mutant("G10", GAIN, "deviation=max(reward_spread, 0.0), rounds=1", "deviation=0.0, rounds=1",
           "first round ignores the reward spread (s^1 = 0)"),
    Mutant("G11", GAIN, "float(count) ** cfg.alpha * math.exp(gain / cfg.tau)",
           "float(count) ** (1 - cfg.alpha) * math.exp(gain / cfg.tau)", "n^(1-α) instead of n^α"),
    Mutant("G12", GAIN, "math.exp(gain / cfg.tau)", "math.exp(gain * cfg.tau)", "exp(g·τ) instead of exp(g/τ)"),
    Mutant("G13", GAIN, "        return float(count)\n", "        return float(count) ** cfg.alpha\n",
           "FedAvg weight n^α instead of n"),
    Mutant("G14", GAIN, "weight(strategy, max_count, cfg.clip, cfg)", "weight(strategy, max_count, 0.0, cfg)",
           "weight bound at gain 0 instead of +G"),
    Mutant("G15", GAIN, 'return "dataset" if strategy == "fedavg" else "informative_groups"',
           'return "informative_groups" if strategy == "fedavg" else "dataset"',
           "'auto' count swapped between strategies"),
    # --- federation/client.py: the L2 clip
    Mutant("C1", CLIENT, "vector = vector * (bound / norm)", "vector = vector / norm", "clip to the unit ball, not C"),
    Mutant("C2", CLIENT, "    return vector, norm\n", "    return vector, float(np.linalg.norm(vector))\n",
           "clip reports the clipped norm, not the original"),
    Mutant("C3", CLIENT, "vector = np.concatenate([e * delta, [e]])", "vector = np.concatenate([delta, [e]])",
           "client sends the unweighted Δ"),
    Mutant("C4", CLIENT, "self.dataset_count = min(len(data.train), run.max_count)",
           "self.dataset_count = len(data.train)", "data-set count not capped at gain.max_count"),
    # --- federation/update.py: ratio of sums, SGD and FedAdam
    Mutant("U1", UPDATE, "return (total[:-1] / denom)", "return (total[:-1] / (len(total) - 1))",
           "divide by the number of coordinates, not Σe"),
    Mutant("U2", UPDATE, "global_vec + cfg.lr * update", "global_vec + update", "SGD ignores the server lr"),
    Mutant("U3", UPDATE, "m = cfg.beta1 * m + (1 - cfg.beta1) * update", "m = (1 - cfg.beta1) * m + cfg.beta1 * update",
           "swap β1 and 1-β1 in FedAdam's first moment"),
    Mutant("U4", UPDATE, "v = cfg.beta2 * v + (1 - cfg.beta2) * update * update",
           "v = (1 - cfg.beta2) * v + cfg.beta2 * update * update", "swap β2 and 1-β2 in FedAdam's second moment"),
    Mutant("U5", UPDATE, "np.full_like(update, cfg.tau**2)", "np.zeros_like(update)",
           "FedAdam v_0 = 0 instead of τ²"),
    Mutant("U6", UPDATE, "m / (np.sqrt(v) + cfg.tau)", "m / np.sqrt(v + cfg.tau)", "FedAdam τ inside the sqrt"),
    # --- grpo/advantages.py
    Mutant("A1", ADV, "std = grouped.std(dim=1, correction=1)", "std = grouped.std(dim=1, correction=0)",
           "group std biased (population) instead of Bessel"),
    Mutant("A2", ADV, "flat.std(correction=1)", "flat.std(correction=0)", "batch std biased"),
    Mutant("A3", ADV, "centred = grouped - grouped.mean(dim=1, keepdim=True)", "centred = grouped - grouped.mean()",
           "centre on the batch mean, not the group mean"),
    Mutant("A4", ADV, "return centred / (std + eps)", "return centred / std.clamp(min=eps)",
           "std + ε replaced by max(std, ε)"),
    Mutant("A5", ADV, "return grouped.amax(dim=1) > grouped.amin(dim=1)",
           "return grouped.amax(dim=1) >= grouped.amin(dim=1)", "every group counts as informative"),
    # --- grpo/loss.py
    Mutant("L1", LOSS, "torch.clamp(ratio, 1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high)",
           "torch.clamp(ratio, 1.0 - cfg.epsilon_high, 1.0 + cfg.epsilon_low)",
           "ε_low and ε_high swapped in the clamp"),
    Mutant("L2", LOSS, "per_token = -torch.min(ratio * adv, clipped * adv)",
           "per_token = -torch.max(ratio * adv, clipped * adv)", "pessimistic min becomes max"),
    Mutant("L3", LOSS, "delta = ref - lp", "delta = lp - ref", "k3 KL direction reversed"),
    Mutant("L4", LOSS, "loss = masked.sum() / (n_seqs * cfg.max_completion_length)",
           "loss = masked.sum() / (n_seqs * m.sum(-1).max())", "dr_grpo normaliser: longest completion, not L_max"),
    Mutant("L5", LOSS, "loss = (masked.sum(-1) / m.sum(-1).clamp(min=1.0)).mean()",
           "loss = masked.sum(-1).mean() / m.sum(-1).clamp(min=1.0).mean()",
           "grpo: ratio of means, not mean of ratios"),
    Mutant("L6", LOSS, "loss = masked.sum() / m.sum().clamp(min=1.0)", "loss = masked.sum() / m.numel()",
           "dapo divides by all positions, padding included"),
    Mutant("L7", LOSS, "high = ((ratio > 1.0 + cfg.epsilon_high) & (adv > 0))",
           "high = ((ratio > 1.0 + cfg.epsilon_low) & (adv > 0))", "high-clip metric uses ε_low"),
    Mutant("L8", LOSS, "low = ((ratio < 1.0 - cfg.epsilon_low) & (adv < 0))",
           "low = ((ratio < 1.0 - cfg.epsilon_low) & (adv <= 0))", "low-clip metric counts A = 0"),
    Mutant("L9", LOSS, "per_token = per_token + cfg.beta * per_token_kl",
           "per_token = per_token - cfg.beta * per_token_kl", "KL penalty sign flipped"),
    Mutant("L10", LOSS, "(masked.sum(-1) / m.sum(-1).clamp(min=1.0))", "(masked.sum(-1) / m.sum(-1).clamp(min=1e-8))",
           "grpo empty-row guard 1 -> 1e-8 (expected equivalent: an empty row's sum is 0)"),
)


def _copy_repo(dst: Path) -> None:
    for name in ("secure_fgrpo", "tests"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "mutation"))
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")


def _run_tests(work: Path, tests: list[str], timeout: float) -> tuple[bool, str]:
    """True when the tests pass. The copy shadows the editable install through PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", *tests]
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    failed = next((ln.split(" ")[1] for ln in lines if ln.startswith("FAILED ")), lines[-1] if lines else "")
    return proc.returncode == 0, failed


def _check_imports_copy(work: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(work)}
    out = subprocess.run([sys.executable, "-c", "import secure_fgrpo; print(secure_fgrpo.__file__)"],
                         cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not out.startswith(str(work)):
        raise SystemExit(f"the copy is not what gets imported ({out}): mutants would not be tested")


def run(tests: list[str], out: Path, only: set[str] | None, timeout: float) -> list[tuple[Mutant, bool, str]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        work = Path(tmp)
        _copy_repo(work)
        _check_imports_copy(work)
        ok, why = _run_tests(work, tests, timeout)
        if not ok:
            raise SystemExit(f"the unmutated code fails its tests ({why}): fix that first")
        for m in MUTANTS:
            if only and m.id not in only:
                continue
            path = work / m.file
            text = path.read_text()
            if text.count(m.original) != 1:
                raise SystemExit(f"mutant {m.id}: {m.file} holds its original snippet {text.count(m.original)} times")
            path.write_text(text.replace(m.original, m.mutated))
            try:
                t0 = time.perf_counter()
                passed, why = _run_tests(work, tests, timeout)
            finally:
                path.write_text(text)
            killed = not passed
            log.info("%-4s %-8s %5.1fs %s", m.id, "killed" if killed else "SURVIVED", time.perf_counter() - t0, m.what)
            results.append((m, killed, why if killed else ""))
    out.write_text(_markdown(results, tests))
    return results


def _markdown(results: list[tuple[Mutant, bool, str]], tests: list[str]) -> str:
    killed = sum(k for _, k, _ in results)
    lines = [f"Tests run: {', '.join(f'`{t}`' for t in tests)}", "",
             f"Killed {killed} of {len(results)} mutants.", "",
             "| id | file | mutant | result | first failing test |", "|---|---|---|---|---|"]
    for m, k, why in results:
        lines.append(f"| {m.id} | `{m.file.removeprefix('secure_fgrpo/')}` | {m.what.replace('|', chr(92) + '|')} | "
                     f"{'killed' if k else '**survived**'} | {why.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tests", nargs="+", default=[t for t in DEFAULT_TESTS if (ROOT / t).exists()])
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "mutation" / "record.md")
    p.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    a = p.parse_args()
    run(a.tests, a.out, set(a.only) if a.only else None, a.timeout)


if __name__ == "__main__":
    main()
