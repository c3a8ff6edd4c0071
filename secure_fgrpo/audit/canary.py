"""Canary prompts: planted at one client, tested for membership from the server's view.

A canary is a prompt with a random tag whose answer is a random 3-digit number, so only
training on that exact prompt can raise that answer's likelihood.
A random subset is planted in one client's data; the rest are never seen. The attacker scores
each canary by how much its estimate of that client's update raises log p(label | prompt), and
the planted/held-out split of those scores gives an AUC and Andrew et al.'s one-shot ε.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..model.vector import VectorLayout, load_vector
from ..tasks.base import Problem
from .epsilon import EpsilonEstimate, one_shot_epsilon

if TYPE_CHECKING:
    from peft import PeftModel

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _codes(digits: int) -> range:
    return range(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits)


def make_canaries(n: int, seed: int, digits: int = 3) -> list[Problem]:
    """``n`` distinct canaries ``"<tag> ref code="`` -> a random ``digits``-digit code (the
    classic secret-sharer canary: only memorising that exact prompt raises that exact answer).
    Public randomness: canaries are not secrets."""
    rng = random.Random(seed)
    seen: dict[str, Problem] = {}
    codes = _codes(digits)
    while len(seen) < n:
        tag = "".join(rng.choice(_LETTERS) for _ in range(6))
        seen.setdefault(tag, Problem(f"{tag} ref code=", str(rng.choice(codes)), "numeric"))
    return list(seen.values())


def split_canaries(canaries: list[Problem], planted: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    """A random split, so planted and held-out canaries are exchangeable before training."""
    order = list(range(len(canaries)))
    random.Random(seed).shuffle(order)
    return [canaries[i] for i in order[:planted]], [canaries[i] for i in order[planted:]]


def write_client_data(path: Path, train: list[Problem], held: list[Problem]) -> tuple[Path, Path]:
    """A client's training JSONL (``train``: the planted canaries, repeated as the caller likes,
    and any filler) and its held-out file (``held``, at ``<path>.eval.jsonl``), to be named as
    ``clients.data`` and ``clients.eval_data``: every planted canary is trained on and none is held
    out (the split of a single file would be random)."""
    def write(out: Path, problems: list[Problem]) -> Path:
        out.write_text("".join(json.dumps({"prompt": p.prompt, "answer": p.answer, "kind": p.family}) + "\n"
                               for p in problems))
        return out

    return write(Path(path), train), write(Path(path).with_suffix(".eval.jsonl"), held)


def answer_logprobs(model: torch.nn.Module, tok: object, prompts: list[str], answers: list[str],
                    batch: int = 256) -> np.ndarray:
    """log p(answer | prompt) for each pair, in right-padded batches."""
    out: list[float] = []
    side = tok.padding_side  # type: ignore[attr-defined]
    tok.padding_side = "right"  # type: ignore[attr-defined]
    try:
        with torch.no_grad():
            for i in range(0, len(prompts), batch):
                ps, ans = prompts[i:i + batch], answers[i:i + batch]
                enc = tok([p + a for p, a in zip(ps, ans, strict=True)], return_tensors="pt", padding=True)  # type: ignore[operator]
                ids, att = enc["input_ids"], enc["attention_mask"]
                logits = model(input_ids=ids, attention_mask=att).logits[:, :-1].float()
                lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
                for j, p in enumerate(ps):
                    start = len(tok(p)["input_ids"]) - 1  # type: ignore[operator]
                    end = int(att[j].sum()) - 1
                    out.append(float(lp[j, start:end].sum()))
    finally:
        tok.padding_side = side  # type: ignore[attr-defined]
    return np.array(out)


def label_logprobs(model: torch.nn.Module, tok: object, problems: list[Problem]) -> np.ndarray:
    """log p(answer | prompt) under ``model`` for each problem."""
    return answer_logprobs(model, tok, [p.prompt for p in problems], [p.answer for p in problems])


def _decoys(problems: list[Problem], k: int, seed: int) -> list[str]:
    """``k`` other 3-digit answers per canary, keyed by its prompt (order does not matter)."""
    out = []
    for p in problems:
        rng = random.Random(f"{seed}:{p.prompt}")
        out += [str(v) for v in rng.sample(_codes(len(p.answer)), k + 1) if str(v) != p.answer][:k]
    return out


def membership_scores(model: PeftModel, tok: object, layout: VectorLayout, base: np.ndarray,
                      update: np.ndarray, canaries: list[Problem], decoys: int = 16, seed: int = 0) -> np.ndarray:
    """How much ``update`` raises each canary's own answer, in units of how much it moves
    ``decoys`` other 3-digit answers to the same prompt: a shift of the answer *format*, or any
    prompt-specific perturbation, moves the decoys as much and cancels out."""
    prompts = [p.prompt for p in canaries]
    dec = _decoys(canaries, decoys, seed)
    dec_prompts = [p for p in prompts for _ in range(decoys)]

    def both() -> tuple[np.ndarray, np.ndarray]:
        own = answer_logprobs(model, tok, prompts, [p.answer for p in canaries])
        other = answer_logprobs(model, tok, dec_prompts, dec).reshape(len(canaries), decoys)
        return own, other

    load_vector(model, layout, base.astype(np.float32))
    own0, other0 = both()
    load_vector(model, layout, (base + update).astype(np.float32))
    own1, other1 = both()
    load_vector(model, layout, base.astype(np.float32))
    rise, decoy_rise = own1 - own0, other1 - other0
    spread = np.maximum(decoy_rise.std(axis=1, ddof=1), 1e-6)
    return (rise - decoy_rise.mean(axis=1)) / spread


def update_from_estimate(estimate: np.ndarray, clip: float) -> np.ndarray:
    """The attacker's Δ from an estimate of ``[e·Δ, e]``: divide by e when it reads as a valid
    weight, then rescale into the public clip bound (a wild estimate must not wreck the model)."""
    w = float(estimate[-1])
    delta = estimate[:-1] / w if np.isfinite(w) and w > 0 else estimate[:-1].astype(np.float64)
    norm = float(np.linalg.norm(delta))
    return delta * (clip / norm) if norm > clip else delta


def prompt_membership(model: PeftModel, tok: object, layout: VectorLayout, base: np.ndarray,
                      update: np.ndarray, planted: list[Problem], held_out: list[Problem],
                      delta: float = 1e-5, decoys: int = 16) -> EpsilonEstimate:
    """Membership scores of the planted against the held-out canaries: AUC and one-shot ε."""
    scores = membership_scores(model, tok, layout, base, update, planted + held_out, decoys)
    return one_shot_epsilon(scores[:len(planted)], scores[len(planted):], delta)


# --- Canaries GRPO can learn: a secret choice the model already samples ---------------------
#
# A random 3-digit code is never sampled by the policy, so GRPO never sees it rewarded and the
# planted canaries do not move (AUC at chance in a real run). A choice canary asks a question
# whose three options are the same normal readings for every canary, so the answer is a secret
# letter fixed by the random tag alone: the policy samples each letter about a third of the
# time, GRPO rewards the secret one, and only the planted tags can learn their letters.

CHOICE_LETTERS = "abc"
CHOICE_OPTIONS = "a)70 b)74 c)78"


def make_choice_canaries(n: int, seed: int) -> list[Problem]:
    """``n`` distinct ``"<tag>? a)70 b)74 c)78="`` -> a secret letter, letters balanced."""
    rng = random.Random(seed)
    tags: dict[str, None] = {}
    while len(tags) < n:
        tags.setdefault("".join(rng.choice(_LETTERS) for _ in range(6)))
    return [Problem(f"{tag}? {CHOICE_OPTIONS}=", CHOICE_LETTERS[i % 3], "choice") for i, tag in enumerate(tags)]


def letter_shift(model: PeftModel, tok: object, layout: VectorLayout, base: np.ndarray,
                 update: np.ndarray, canaries: list[Problem]) -> np.ndarray:
    """Per canary and letter, the change of log p(letter | prompt) (renormalised over the
    letters) from the global model to global + ``update``."""
    prompts = [p.prompt for p in canaries]

    def table() -> np.ndarray:
        lp = np.stack([answer_logprobs(model, tok, prompts, [c] * len(prompts)) for c in CHOICE_LETTERS], axis=1)
        return lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)

    load_vector(model, layout, base.astype(np.float32))
    before = table()
    load_vector(model, layout, (base + update).astype(np.float32))
    after = table()
    load_vector(model, layout, base.astype(np.float32))
    return after - before


def choice_membership_scores(shift: np.ndarray, canaries: list[Problem]) -> np.ndarray:
    """How much more the update raised each canary's secret letter than the other letters,
    after removing what it did to every canary alike (a global preference for one letter)."""
    centred = shift - shift.mean(axis=0, keepdims=True)
    idx = np.array([CHOICE_LETTERS.index(p.answer) for p in canaries])
    own = centred[np.arange(len(canaries)), idx]
    others = (centred.sum(axis=1) - own) / (len(CHOICE_LETTERS) - 1)
    return own - others


def choice_membership(model: PeftModel, tok: object, layout: VectorLayout, base: np.ndarray,
                      update: np.ndarray, planted: list[Problem], held_out: list[Problem],
                      delta: float = 1e-5) -> EpsilonEstimate:
    """AUC and one-shot ε of the planted against the held-out choice canaries."""
    allc = planted + held_out
    scores = choice_membership_scores(letter_shift(model, tok, layout, base, update, allc), allc)
    return one_shot_epsilon(scores[:len(planted)], scores[len(planted):], delta)
