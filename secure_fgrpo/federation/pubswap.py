"""PubSwap at the client (arXiv 2604.12160): off-policy GRPO steps on the public prompts with
locally incorrect responses replaced by globally correct ones, and the offers it makes.

Runs inside the client's local job (local.py), after its private GRPO steps, so the steps'
update is part of the client's Δ_i and goes through the one secure sum like everything else.

Selective replacement: in the group the client samples for a public prompt, only the responses
its own grader scores below full marks are replaced, one by one, by pool responses (other
institutions' correct responses to that prompt, opened from the relay) that its OWN grader scores
at full marks on that prompt; a pool response it does not grade correct is never used.

Importance ratio: the generator's log-probs are not sent (they would say more about the sender's
model), so the old log-probs are the current model's, detached, at the start of each step: the
ratio is 1 at the first policy-gradient iteration and the step is A·∇log π(y) on every response,
replaced ones included, with no correction toward the model that generated them (clipping only
acts from the second iteration on, grpo.mu > 1).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..grpo.advantages import group_advantages, informative_groups
from ..grpo.trainer import GRPOConfig, LocalSteps, RewardFn, policy_update, select_groups
from ..rollout.base import RolloutBackend, RolloutBatch, assemble_batch
from ..tasks.base import Problem
from .sealed import Offer, fits

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


@dataclass
class PubSwapJob:
    """What a client's local job needs for PubSwap (picklable). ``train``: the public prompts
    whose pool arrived this round (empty: no steps); ``offer``: the prompts to offer on."""

    public: tuple[Problem, ...]
    train: list[int]
    pool: dict[int, list[str]]
    offer: list[int]
    steps: int
    responses: int
    blob_bytes: int
    opened: int = 0  # pool responses opened from the relay (for the metrics)
    dropped: int = 0  # blobs that failed to open


@dataclass
class PubSwapResult:
    offers: list[Offer] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def replace_incorrect(texts: list[str], rewards: list[float], pool: list[str], pool_reward: float,
                      full: float) -> tuple[list[str], list[float], list[bool]]:
    """Selective replacement in one group: each response scored below ``full`` takes the next
    pool response (all of them graded ``pool_reward`` = full marks by the caller), in order,
    until the pool runs out. Returns the texts, rewards and which rows were replaced."""
    texts, rewards = list(texts), list(rewards)
    replaced = [False] * len(texts)
    supply = iter(pool)
    for i, r in enumerate(rewards):
        if r >= full:
            continue
        nxt = next(supply, None)
        if nxt is None:
            break
        texts[i], rewards[i], replaced[i] = nxt, pool_reward, True
    return texts, rewards, replaced


def _completion_ids(tok: PreTrainedTokenizerBase, text: str, max_new: int) -> list[int] | None:
    """The token ids of ``text`` then EOS, or None when they do not fit ``max_new`` tokens or do
    not decode back to ``text`` (the log-probs would be of another string)."""
    ids = [*tok(text, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    if len(ids) > max_new or tok.decode(ids[:-1], skip_special_tokens=True) != text:
        return None
    return ids


def with_rows(tok: PreTrainedTokenizerBase, batch: RolloutBatch, rows: dict[int, list[int]],
              max_new: int) -> RolloutBatch:
    """``batch`` with the completion tokens of ``rows`` replaced (masks and texts recomputed by
    the one assembly every backend uses)."""
    p = batch.prompt_len
    comp = batch.sequences[:, p:].clone()
    for row, ids in rows.items():
        comp[row] = tok.pad_token_id
        comp[row, :len(ids)] = torch.tensor(ids, dtype=comp.dtype)
    seq = torch.cat([batch.sequences[:, :p], comp], 1)
    return assemble_batch(tok, seq, batch.attention_mask[:, :p], p, max_new)


def usable_pool(tok: PreTrainedTokenizerBase, problem: Problem, pool: list[str], reward_fn: RewardFn,
                full: float, max_new: int) -> tuple[list[tuple[str, list[int]]], int]:
    """The pool responses this client's own grader scores at full marks on ``problem`` and its
    tokenizer can train on; and how many were refused."""
    ok = []
    distinct = list(dict.fromkeys(pool))  # two institutions may offer the same text: used once
    for text in distinct:
        ids = _completion_ids(tok, text, max_new)
        if ids is not None and reward_fn(problem, text, True) >= full:
            ok.append((text, ids))
    return ok, len(distinct) - len(ok)


def pubswap_steps(model: PeftModel, tok: PreTrainedTokenizerBase, rollout: RolloutBackend, job: PubSwapJob,
                  reward_fn: RewardFn, full: float, cfg: GRPOConfig, seed: int) -> dict[str, float]:
    """``job.steps`` off-policy GRPO steps on the public prompts ``job.train`` (see the module
    docstring for the replacement and the importance ratio). Returns the client's metrics."""
    metrics = {"pubswap_steps": 0.0, "pubswap_groups": 0.0, "pubswap_replaced": 0.0, "pubswap_refused": 0.0}
    if not job.train or not any(job.pool.get(i) for i in job.train):
        return metrics
    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    local = LocalSteps(model, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0), cfg, rng)
    g, max_new = cfg.group_size, cfg.sampling.max_new_tokens
    problems = [job.public[i] for i in job.train]
    pools = []
    for i, problem in zip(job.train, problems, strict=True):
        ok, refused = usable_pool(tok, problem, job.pool.get(i, []), reward_fn, full, max_new)
        pools.append(ok)
        metrics["pubswap_refused"] += refused
    for _ in range(job.steps):
        batch = rollout.generate(model, tok, [p.prompt for p in problems], g, cfg.sampling, rng.getrandbits(31))
        rewards: list[float] = []
        rows: dict[int, list[int]] = {}
        for k, problem in enumerate(problems):
            own = [reward_fn(problem, batch.texts[k * g + j], batch.finished[k * g + j]) for j in range(g)]
            supply = list(pools[k])
            rng.shuffle(supply)
            _, new, replaced = replace_incorrect(batch.texts[k * g:(k + 1) * g], own, [t for t, _ in supply],
                                                 full, full)
            ids = iter(i for _, i in supply)
            rows.update({k * g + j: next(ids) for j in range(g) if replaced[j]})
            rewards.extend(new)
        metrics["pubswap_replaced"] += len(rows)
        batch = with_rows(tok, batch, rows, max_new) if rows else batch
        r = torch.tensor(rewards, dtype=torch.float32)
        keep = [k for k, inf in enumerate(informative_groups(r, g).tolist()) if inf][: cfg.prompts_per_step]
        metrics["pubswap_steps"] += 1
        if not keep:
            continue
        metrics["pubswap_groups"] += len(keep)
        sub = select_groups(batch, keep, g)
        adv = group_advantages(r.view(-1, g)[keep].reshape(-1), g, cfg.scale_rewards).to(sub.sequences.device)
        policy_update(model, local, sub, adv, cfg, cfg.shared_prefix and local.shares_prefix_in_loss)
    return metrics


def make_offers(model: PeftModel, tok: PreTrainedTokenizerBase, rollout: RolloutBackend, job: PubSwapJob,
                reward_fn: RewardFn, full: float, cfg: GRPOConfig, seed: int) -> list[Offer]:
    """Up to ``job.responses`` distinct responses per offered public prompt that the local model
    samples and the client's own grader scores at full marks (and that fit one blob)."""
    if not job.offer:
        return []
    g = cfg.group_size
    problems = [job.public[i] for i in job.offer]
    batch = rollout.generate(model, tok, [p.prompt for p in problems], g, cfg.sampling, seed)
    offers: list[Offer] = []
    for k, (i, problem) in enumerate(zip(job.offer, problems, strict=True)):
        chosen: list[str] = []
        for j in range(g):
            text, done = batch.texts[k * g + j], batch.finished[k * g + j]
            if (len(chosen) < job.responses and text not in chosen and fits(text, job.blob_bytes)
                    and reward_fn(problem, text, done) >= full):
                chosen.append(text)
        offers.extend(Offer(i, t) for t in chosen)
    return offers


def run_pubswap(model: PeftModel, tok: PreTrainedTokenizerBase, rollout: RolloutBackend, job: PubSwapJob,
                reward_fn: RewardFn, full: float, cfg: GRPOConfig, seed: int) -> PubSwapResult:
    """The round's PubSwap steps, then the offers of the resulting local model."""
    metrics = pubswap_steps(model, tok, rollout, job, reward_fn, full, cfg, seed)
    offers = make_offers(model, tok, rollout, job, reward_fn, full, cfg, seed ^ 0x0FFE)
    metrics.update(pubswap_pool=float(job.opened), pubswap_dropped=float(job.dropped),
                   pubswap_offers=float(len(offers)))
    return PubSwapResult(offers, metrics)
