"""A client's local compute for one round, as a picklable job so it can run in a worker
process: load base + global adapter, measure the global on the client's own held-out split,
train with GRPO, return the adapter delta. Nothing here leaves the client."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..grpo.evaluate import pass_at_1
from ..grpo.trainer import GRPOConfig, RoundResult, train_round
from ..model.export import save_adapter
from ..model.load import EMBEDDED, load_base
from ..model.lora import LoraSpec, attach_lora
from ..model.vector import VectorLayout, load_vector, to_vector
from ..rollout import SamplingSpec, make_rollout
from ..tasks import score
from ..tasks.base import Problem, RewardSpec
from .pubswap import PubSwapJob, PubSwapResult, run_pubswap

if TYPE_CHECKING:
    from peft import PeftModel

    from ..config import RunConfig
    from ..privacy.config import ExampleDPSettings


@dataclass
class TrainJob:
    client: str
    round: int
    model_path: str
    rollout: str
    lora: LoraSpec
    global_vector: np.ndarray
    pool: list[Problem]
    eval_set: list[Problem]
    reward: RewardSpec
    grpo: GRPOConfig
    eval_sampling: SamplingSpec
    seed: int
    threads: int = 1
    dp: ExampleDPSettings | None = None  # example-level DP-SGD (the client's own privacy plan)
    device: str = "cpu"  # model.device
    pubswap: PubSwapJob | None = None  # [pubswap]: off-policy steps on public prompts, then offers


@dataclass
class TrainOutcome:
    client: str
    delta: np.ndarray
    result: RoundResult
    eval_accuracy: float  # the incoming global adapter on this client's held-out split
    seconds: float
    pubswap: PubSwapResult | None = None  # offers to seal and metrics (exchange.py)


@dataclass
class _Scorer:
    """Picklable reward function bound to the client's reward scale."""

    spec: RewardSpec

    def __call__(self, problem: Problem, completion: str, finished: bool) -> float:
        return score(problem, completion, finished, self.spec)


def eval_seed_of(train_seed: int) -> int:
    """The sampling seed of a client's held-out evaluation, from its round's training seed."""
    return train_seed ^ 0x5EED


def run_training(job: TrainJob) -> TrainOutcome:
    t0 = time.perf_counter()
    torch.set_num_threads(job.threads)
    base, tok = load_base(job.model_path, device=job.device)
    model = attach_lora(base, job.lora)
    layout = VectorLayout.of(model)
    load_vector(model, layout, job.global_vector)
    rollout = make_rollout(job.rollout)
    accuracy = pass_at_1(model, tok, rollout, job.eval_set, job.eval_sampling, seed=eval_seed_of(job.seed))
    result = train_round(model, tok, rollout, job.pool, _Scorer(job.reward), job.grpo, seed=job.seed,
                         dp=job.dp, max_reward=job.reward.scale)
    swap = None
    if job.pubswap is not None:  # part of this round's Δ: the one secure sum covers it
        swap = run_pubswap(model, tok, rollout, job.pubswap, _Scorer(job.reward), job.reward.scale, job.grpo,
                           seed=job.seed ^ 0x9B5A)
    delta = to_vector(model, layout) - job.global_vector
    return TrainOutcome(job.client, delta.astype(np.float32), result, accuracy, time.perf_counter() - t0, swap)


def initial_adapter(cfg: RunConfig, model_path: str) -> tuple[PeftModel, Any, VectorLayout]:
    """The base model with a fresh LoRA adapter seeded by ``cfg.seed``: wherever the server runs
    (in process, a Flower ServerApp) it starts from the same global vector."""
    torch.manual_seed(cfg.seed)
    base, tok = load_base(model_path, device=cfg.model.device)
    model = attach_lora(base, cfg.model.lora)
    return model, tok, VectorLayout.of(model)



def export_global(cfg: RunConfig, model: PeftModel, tok: Any, layout: VectorLayout, vector: np.ndarray,
                  model_path: str, outs: list[Path]) -> None:
    """The global adapter in peft's on-disk format with the base model's tokenizer and location
    (model/export.py: loads with AutoPeftModelForCausalLM/AutoTokenizer), into each of ``outs``."""
    load_vector(model, layout, vector)
    note = (f"the embedded tiny model, built by secure_fgrpo from model.embedded = {asdict(cfg.model.embedded)}"
            if cfg.model.path == EMBEDDED else f"model.path = {cfg.model.path!r}")
    base = str(Path(model_path).resolve()) if Path(model_path).exists() else model_path
    for out in outs:
        save_adapter(model, tok, out, base, note)
