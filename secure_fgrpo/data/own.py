"""An institution's own file, made fit for honest evaluation: a held-out split (or the held-out
file the config names) and the training rows cleaned of every prompt held out anywhere.

Why here: a file built from prompts the federation evaluates on would turn held-out accuracy
into recall without a word; the rows are removed (never the file) and the count is logged with
the file's name, so the institution sees what its training lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from secure_fgrpo.data.local import load_problems
from secure_fgrpo.tasks import Problem

log = logging.getLogger(__name__)


@dataclass
class OwnSplit:
    """One client's rows from its file(s): what it trains on and what it holds out."""

    source: str  # the training file, as the config names it
    train: list[Problem]
    eval: list[Problem]
    eval_source: str  # the held-out file, or "<source> (held-out split)"


def split_own(data: str, eval_data: str, fraction: float, seed: int) -> OwnSplit:
    """Rows of ``data`` split by prompt: a seeded ``fraction`` of its distinct prompts is held
    out (every row of a held-out prompt goes with it), unless ``eval_data`` names a held-out
    file, in which case all of ``data`` is training. Either way no prompt is on both sides."""
    rows = load_problems(data)
    if eval_data:
        held = unique_prompts(load_problems(eval_data))
        out = OwnSplit(data, rows, held, eval_data)
    else:
        prompts = sorted({p.prompt for p in rows})
        if len(prompts) < 2:
            raise ValueError(f"{data}: needs at least 2 distinct prompts to hold some out for "
                             "evaluation (or name a held-out file in clients.eval_data)")
        random.Random(seed).shuffle(prompts)
        chosen = set(prompts[: min(len(prompts) - 1, max(1, round(fraction * len(prompts))))])
        out = OwnSplit(data, [p for p in rows if p.prompt not in chosen],
                       unique_prompts([p for p in rows if p.prompt in chosen]), f"{data} (held-out split)")
    return remove_held_out(out, {p.prompt for p in out.eval}, "its own held-out rows")


def remove_held_out(split: OwnSplit, held_out: set[str], what: str) -> OwnSplit:
    """``split`` without the training rows whose prompt is in ``held_out`` (logged with the
    file and the count); refuses a file left with no training row at all."""
    train = _without(split.train, held_out, split.source, "training rows whose prompt is held out for "
                     f"evaluation ({what})")
    return OwnSplit(split.source, train, split.eval, split.eval_source)


def drop_trained_eval(split: OwnSplit, trained: set[str], what: str) -> OwnSplit:
    """``split`` without the held-out rows someone trains on (logged with the file and count):
    such a row would measure recall, not generalisation. Refuses an empty held-out set."""
    held = _without(split.eval, trained, split.eval_source, f"held-out rows whose prompt is a training prompt ({what})")
    return OwnSplit(split.source, split.train, held, split.eval_source)


def _without(rows: list[Problem], prompts: set[str], file: str, which: str) -> list[Problem]:
    kept = [p for p in rows if p.prompt not in prompts]
    if len(kept) < len(rows):
        log.warning("%s: removed %d of %d %s", file, len(rows) - len(kept), len(rows), which)
    if not kept:
        raise ValueError(f"{file}: nothing left once the {len(rows)} {which} are removed")
    return kept


def unique_prompts(rows: list[Problem], existing: Sequence[Problem] = ()) -> list[Problem]:
    """One row per prompt, none already in ``existing``: a prompt counts once in an accuracy."""
    seen = {p.prompt for p in existing}
    out = []
    for p in rows:
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p)
    return out
