"""The embedded default model: a ~1M-parameter Llama-architecture causal LM, built from a config
and warm-started on the task generators, ending with deliberately noisy labels; cached by its key.

Why Llama, not Qwen2: transformers 5's ``AutoTokenizer`` forces Qwen2's byte-level tokenizer on
any ``qwen2`` folder, which silently drops the spaces of every prompt; for ``llama`` it honours
the saved char tokenizer, so loading the base (or the exported adapter) the obvious way works.

Why the held-out space: the warm start draws only from the train space (tasks/heldout.py), so
every held-out prompt is one the base model was never taught.

Why noisy: a model trained on clean labels ends up always right or always wrong per family, so
GRPO groups have identical rewards and nothing to learn from. With each target correct only with
probability ``p_correct`` (otherwise a plausible slip), per-prompt success sits in the middle, as
with a real pretrained model that "sometimes knows" — and most GRPO groups are informative.

Why two phases: under noisy labels alone the rule's signal is weak (0.4 against 0.6) and a tiny
model does not learn it in a few hundred steps — it sits at chance and GRPO has nothing to
sharpen (measured: 28% held-out, +8 points after 40 GRPO steps). Learning the rules on clean
labels first, then blurring them with a short noisy phase, leaves a model that knows but is
unsure (measured: 39% held-out, 72% after 40 GRPO steps; on the Qwen2 model and the old
held-out set, which overlapped the warm start — on never-seen prompts this model starts at 32%
and the demo reaches 60.5% after 6 rounds).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ..tasks import GENERATED_FAMILIES, Problem, sample_problems, warm_start_target
from .tokenizer import build_char_tokenizer

log = logging.getLogger(__name__)
BUILD_VERSION = 3  # bump when the build recipe changes, so stale caches are not reused


@dataclass(frozen=True)
class TinyModelSpec:
    hidden_size: int = 128
    intermediate_size: int = 512
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    max_positions: int = 64
    warm_steps: int = 400
    clean_steps: int = 300  # the first phase: correct targets only
    warm_batch: int = 64
    warm_lr: float = 3e-3
    p_correct: float = 0.4
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "v": BUILD_VERSION, "families": list(GENERATED_FAMILIES)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root() -> Path:
    """Outside the repo: ``$SECURE_FGRPO_CACHE`` or ``~/.cache/secure_fgrpo``."""
    return Path(os.environ.get("SECURE_FGRPO_CACHE", Path.home() / ".cache" / "secure_fgrpo"))


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def embedded_model_path(spec: TinyModelSpec | None = None) -> Path:
    """Path of the cached warm-started model, building it first if needed (once, locked)."""
    spec = spec or TinyModelSpec()
    target = cache_root() / "models" / f"tiny-{spec.key()}"
    if (target / "READY").exists():
        return target
    with _build_lock(cache_root() / "models" / f".lock-{spec.key()}"):
        if not (target / "READY").exists():
            build_tiny_model(spec, target)
    return target


def _encode_batch(tok: PreTrainedTokenizerFast, prompts: list[str], targets: list[str]) -> dict[str, torch.Tensor]:
    """Right-padded ``<bos> prompt target <eos>`` with labels only on target and EOS."""
    rows, labels = [], []
    for p, t in zip(prompts, targets, strict=True):
        p_ids = tok(p)["input_ids"]
        t_ids = tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append(p_ids + t_ids)
        labels.append([-100] * len(p_ids) + t_ids)
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tok.pad_token_id)
    lab = torch.full((len(rows), width), -100)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lb) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        lab[i, : len(lb)] = torch.tensor(lb)
        att[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": att, "labels": lab}


def warm_start_batches(spec: TinyModelSpec) -> Iterator[tuple[list[Problem], list[str]]]:
    """The warm start's (problems, targets) per step, in order: the whole training stream, cheap
    to regenerate without a model (the tests check it never touches the held-out space)."""
    rng = random.Random(spec.seed)
    families = list(GENERATED_FAMILIES)
    for step in range(spec.warm_steps):
        probs = sample_problems(families, spec.warm_batch, seed=rng.getrandbits(32), space="train")
        p_correct = 1.0 if step < spec.clean_steps else spec.p_correct
        yield probs, [warm_start_target(p, rng, p_correct) for p in probs]


def warm_start_prompts(spec: TinyModelSpec) -> set[str]:
    """Every prompt the warm start of ``spec`` trains on (a second or so; no model needed)."""
    return {p.prompt for probs, _ in warm_start_batches(spec) for p in probs}


def build_tiny_model(spec: TinyModelSpec, target: Path) -> None:
    """Build, warm-start on noisy labels over every built-in family, and save to ``target``."""
    t0 = time.perf_counter()
    torch.manual_seed(spec.seed)
    tok = build_char_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.max_positions, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec.warm_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.warm_lr, total_steps=spec.warm_steps, pct_start=0.1)
    for step, (probs, targets) in enumerate(warm_start_batches(spec)):
        batch = _encode_batch(tok, [p.prompt for p in probs], targets)
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            log.info("warm start step %d/%d loss %.3f", step, spec.warm_steps, loss.item())
    tmp = target.with_name(target.name + ".tmp")
    model.eval()
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
    (tmp / "READY").write_text(f"{time.perf_counter() - t0:.1f}\n")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    log.info("built embedded model in %.1f s -> %s", time.perf_counter() - t0, target)
