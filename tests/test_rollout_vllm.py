"""model.rollout = "vllm": the pure parts everywhere (refusal, sampling-parameter mapping, seeds,
LoRA ids and digests, the completion layout that feeds the shared grading path), and on a CUDA
machine with the vllm extra installed the backend itself against the transformers backend on the
real model (SmolLM2-135M-Instruct), plus one GRPO round with vLLM rollouts."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import small_run

from secure_fgrpo.config import ModelConfig, config_from_dict
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.model.load import load_base, load_tokenizer
from secure_fgrpo.model.lora import LoraSpec, attach_lora, randomize_b
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.rollout import vllm_support as vs
from secure_fgrpo.rollout.base import (
    TOP_K,
    TOP_P,
    RolloutBatch,
    assemble_batch,
    suppressed_tokens,
)

MISSING = vs.vllm_missing()
needs_vllm = pytest.mark.skipif(bool(MISSING), reason=f"needs {' and '.join(MISSING)}" if MISSING else "")
REAL = "smollm2-135m-instruct"


# --- refusal: accepted only where it can work -------------------------------------------------

@pytest.mark.skipif(not MISSING, reason="this machine has a CUDA GPU and vllm: a refusal cannot be provoked")
def test_vllm_rollout_is_refused_in_one_line_naming_the_key_and_what_is_missing() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(small_run(**{"model.rollout": "vllm"}))
    assert err.value.key == "model.rollout" and "\n" not in str(err.value)
    for what in MISSING:
        assert what in str(err.value)
    with pytest.raises(ConfigError, match=r"model.rollout"):  # a config checked elsewhere still stops at run time
        make_rollout("vllm")


def test_the_refusal_names_exactly_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find = importlib.util.find_spec

    def find(name: str, package: str | None = None) -> object:
        if name == "vllm":
            return object() if has_vllm else None
        return real_find(name, package)

    for has_vllm in (False, True):
        for has_cuda in (False, True):
            monkeypatch.setattr(importlib.util, "find_spec", find)
            monkeypatch.setattr(torch.cuda, "is_available", lambda c=has_cuda: c)
            missing = vs.vllm_missing()
            assert (any("vllm package" in m for m in missing), any("CUDA GPU" in m for m in missing)) == (
                not has_vllm, not has_cuda)
            if missing:
                with pytest.raises(ConfigError, match=r"model.rollout"):
                    ModelConfig(rollout="vllm")
            else:  # both present: the setting is accepted
                assert ModelConfig(rollout="vllm").rollout == "vllm"
    assert "pip install 'secure_fgrpo[vllm]'" in vs.refusal(["the vllm package (" + vs.INSTALL_HINT + ")"])


# --- sampling parameters: the transformers backend's, nothing else ------------------------------

def test_sampling_parameters_map_one_to_one_from_the_spec() -> None:
    spec = SamplingSpec(max_new_tokens=48, temperature=0.7)
    kw = vs.sampling_kwargs(spec, group_size=8, seed=123, eos_token_id=2, allowed_token_ids=[2, 3, 4])
    assert kw["n"] == 8 and kw["seed"] == 123 and kw["max_tokens"] == 48 and kw["temperature"] == 0.7
    assert (kw["top_k"], kw["top_p"]) == (TOP_K, TOP_P) == (0, 1.0)  # full softmax, as HFRollout samples
    assert kw["stop_token_ids"] == [2] and kw["ignore_eos"] is False
    assert kw["allowed_token_ids"] == [2, 3, 4]
    # vLLM's log-probs are never requested: the GRPO ratio's come from the training model
    assert kw["logprobs"] is None and kw["prompt_logprobs"] is None
    with pytest.raises(ValueError, match=r"below 0.01"):
        vs.sampling_kwargs(SamplingSpec(temperature=0.005), 2, 0, 2, [2])
    # and a rollout batch has no field that could carry a backend's log-probs to the loss
    assert not [f.name for f in dataclasses.fields(RolloutBatch) if "logp" in f.name or "logprob" in f.name]


def test_allowed_tokens_are_the_vocabulary_without_what_the_transformers_backend_suppresses(
        quick_model_dir: Path) -> None:
    tok = load_tokenizer(str(quick_model_dir))
    tok.pad_token = tok.pad_token or tok.eos_token
    never = suppressed_tokens(tok)
    allowed = vs.allowed_tokens(len(tok), never)
    assert never and not set(never) & set(allowed) and len(allowed) == len(tok) - len(never)
    assert tok.eos_token_id in allowed


def test_prompt_seeds_are_deterministic_and_no_two_samples_share_a_seed() -> None:
    seeds = vs.prompt_seeds(7, prompts=24, group_size=8)
    assert seeds == vs.prompt_seeds(7, 24, 8) and seeds != vs.prompt_seeds(8, 24, 8)
    samples = [s + j for s in seeds for j in range(8)]  # vLLM seeds sample j of a group with seed + j
    assert len(set(samples)) == len(samples)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the vllm package (SamplingParams)")
def test_vllm_accepts_the_mapped_parameters() -> None:
    from vllm import SamplingParams  # type: ignore[import-not-found]

    params = SamplingParams(**vs.sampling_kwargs(SamplingSpec(8, 1.0), 4, 5, 2, [2, 3]))
    assert params.top_k == 0 and params.top_p == 1.0 and params.n == 4 and params.logprobs is None


# --- LoRA ids: a changed adapter never reuses an id ---------------------------------------------

def test_an_id_belongs_to_one_weight_digest_and_is_never_reused() -> None:
    ids = vs.AdapterIds()
    assert ids.lookup("a") == (1, True)
    assert ids.lookup("a") == (1, False)  # unchanged weights: vLLM keeps the loaded adapter
    assert ids.lookup("b") == (2, True)  # changed weights: a fresh id
    assert ids.lookup("a") == (3, True)  # back to earlier weights: still a fresh id (those files are gone)
    assert vs.AdapterIds.name(3, "a" * 64) != vs.AdapterIds.name(1, "a" * 64)  # vLLM compares requests by name


def test_the_digest_sees_a_one_ulp_change_of_any_adapter_weight(quick_model_dir: Path) -> None:
    from peft.utils import get_peft_model_state_dict

    base, _ = load_base(str(quick_model_dir))
    model = attach_lora(base, LoraSpec(r=4, mode="standard"))
    state = get_peft_model_state_dict(model)
    before = vs.adapter_digest(state)
    assert before == vs.adapter_digest({k: v.clone() for k, v in state.items()})
    name = sorted(state)[len(state) // 2]
    with torch.no_grad():
        state[name].view(-1)[3] = torch.nextafter(state[name].view(-1)[3], torch.tensor(1.0))
    assert vs.adapter_digest(state) != before
    renamed = {("x" + k if k == name else k): v for k, v in state.items()}
    assert vs.adapter_digest(renamed) != vs.adapter_digest(state)


def test_lora_rank_buckets() -> None:
    assert [vs.lora_rank_bucket(r) for r in (1, 2, 8, 9, 16, 17, 512)] == [1, 8, 8, 16, 16, 32, 512]
    with pytest.raises(ValueError, match=r"lora.r"):
        vs.lora_rank_bucket(513)


# --- the completion layout: vLLM's token lists go through the one grading path ------------------

def test_completion_tokens_lay_out_like_the_transformers_backend() -> None:
    assert vs.completion_tokens([5, 6, 2], True, 2, 0, 6) == [5, 6, 2, 0, 0, 0]
    assert vs.completion_tokens([5, 6], True, 2, 0, 6) == [5, 6, 2, 0, 0, 0]  # EOS left out by the engine
    assert vs.completion_tokens([5, 6, 7], False, 2, 0, 3) == [5, 6, 7]  # cut at the length budget
    assert vs.completion_tokens([5, 6, 7, 8], False, 2, 0, 3) == [5, 6, 7]


def test_vllm_shaped_outputs_assemble_to_the_transformers_batch(quick_model_dir: Path) -> None:
    """The transformers backend's own completions, handed over as vLLM hands them (unpadded id
    lists with a finish reason), assemble to the identical batch: same ids, masks and texts."""
    base, tok = load_base(str(quick_model_dir))
    model = attach_lora(base, LoraSpec(r=4))
    prompts, g, spec = ["3 g to mg=", "BP 120/80, MAP="], 3, SamplingSpec(max_new_tokens=6)
    ref = make_rollout("transformers").generate(model, tok, prompts, g, spec, seed=1)
    comps = []
    rows = ref.sequences[:, ref.prompt_len:].tolist()
    for row, mask, done in zip(rows, ref.completion_mask.tolist(), ref.finished, strict=False):
        ids = row[: sum(mask)]
        comps.append(vs.completion_tokens(ids[:-1] if done else ids, done, tok.eos_token_id, tok.pad_token_id, 6))
    prompt = ref.sequences[:, : ref.prompt_len]
    out = assemble_batch(tok, torch.cat([prompt, torch.tensor(comps)], 1), ref.attention_mask[:, : ref.prompt_len],
                         ref.prompt_len, 6)
    assert torch.equal(out.sequences, ref.sequences) and torch.equal(out.attention_mask, ref.attention_mask)
    assert out.texts == ref.texts and out.finished == ref.finished


# --- on a GPU with vllm: the backend itself -----------------------------------------------------

def _real_policy(r: int = 8, seed: int = 0):  # type: ignore[no-untyped-def]
    """SmolLM2 on the GPU with a LoRA adapter whose B is non-zero (so the adapter changes outputs)."""
    base, tok = load_base(REAL, device="cuda")
    model = attach_lora(base, LoraSpec(r=r, mode="standard", target_modules=("q_proj", "k_proj", "v_proj", "o_proj")))
    randomize_b(model, 0.05, torch.Generator().manual_seed(seed))
    return model, tok


def _prompts(n: int) -> list[str]:
    from secure_fgrpo.tasks import sample_problems

    return [p.prompt for p in sample_problems({"cardiology": 0.5, "nephrology": 0.5}, n, seed=2)]


@needs_vllm
def test_vllm_greedy_completions_follow_the_adapter_and_match_transformers() -> None:
    from vllm import SamplingParams  # type: ignore[import-not-found]

    from secure_fgrpo.model.chat import encode_prompts
    from secure_fgrpo.model.vector import VectorLayout, load_vector, to_vector
    from secure_fgrpo.rollout.vllm import VLLMRollout, _engine_for, base_model_folder

    model, tok = _real_policy()
    prompts, t = _prompts(8), 12
    enc = encode_prompts(tok, prompts)
    rows = [ids[a.bool()].tolist() for ids, a in zip(enc["input_ids"], enc["attention_mask"], strict=False)]
    VLLMRollout()  # the refusal check
    engine = _engine_for(base_model_folder(model), 8, VLLMRollout().settings)

    def both() -> tuple[list[list[int]], list[list[int]]]:
        outs = engine.llm.generate([{"prompt_token_ids": r} for r in rows],
                                   SamplingParams(temperature=0.0, max_tokens=t, stop_token_ids=[tok.eos_token_id]),
                                   lora_request=engine.adapter(model), use_tqdm=False)
        with torch.no_grad():
            seq = model.generate(input_ids=enc["input_ids"].cuda(), attention_mask=enc["attention_mask"].cuda(),
                                 do_sample=False, max_new_tokens=t, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
        completions = seq[:, enc["input_ids"].shape[1]:].tolist()
        hf = [row[: len(o.outputs[0].token_ids)] for row, o in zip(completions, outs, strict=False)]
        return [list(o.outputs[0].token_ids) for o in outs], hf

    first, hf_first = both()
    # bfloat16 sampling copy vs the float32 policy: near-ties may flip a token; most prompts agree
    assert sum(a[:6] == b[:6] for a, b in zip(first, hf_first, strict=False)) >= 6
    lora_id = engine.request.lora_int_id
    layout = VectorLayout.of(model)
    load_vector(model, layout, 2 * to_vector(model, layout))  # B A x 4: a new id, new completions
    second, hf_second = both()
    assert engine.request.lora_int_id == lora_id + 1
    assert sum(a[:6] == b[:6] for a, b in zip(second, hf_second, strict=False)) >= 6
    assert second != first  # had the old id been reused, vLLM would still sample the old adapter


@needs_vllm
def test_vllm_samples_have_the_transformers_distribution_under_a_fixed_adapter() -> None:
    """Mean per-token log-prob, under the float32 training model, of each backend's samples."""
    from secure_fgrpo.grpo.logprobs import completion_logprobs

    model, tok = _real_policy()
    prompts, g, spec = _prompts(8), 8, SamplingSpec(max_new_tokens=32, temperature=1.0)
    means = {}
    for name in ("transformers", "vllm"):
        batch = make_rollout(name).generate(model, tok, prompts, g, spec, seed=4)
        with torch.no_grad():
            lp = completion_logprobs(model, batch)
        m = batch.completion_mask.bool()
        per_row = (lp * m).sum(1) / m.sum(1)
        means[name] = (per_row.mean().item(), per_row.std().item() / len(per_row) ** 0.5)
        assert not set(suppressed_tokens(tok)) & set(batch.sequences[:, batch.prompt_len:][m].tolist())
    (a, sa), (b, sb) = means["transformers"], means["vllm"]
    assert abs(a - b) < 4 * (sa * sa + sb * sb) ** 0.5 + 0.05, means


@needs_vllm
def test_one_grpo_round_with_vllm_rollouts() -> None:
    from secure_fgrpo.grpo.trainer import GRPOConfig, train_round
    from secure_fgrpo.model.vector import VectorLayout, to_vector
    from secure_fgrpo.rollout import vllm as vllm_backend
    from secure_fgrpo.tasks import Problem, sample_problems

    model, tok = _real_policy(seed=1)  # weights no earlier test attached: both ids below are fresh
    layout = VectorLayout.of(model)
    before = to_vector(model, layout)
    pool = sample_problems({"cardiology": 1.0}, 16, seed=3)
    cfg = dataclasses.replace(GRPOConfig(), steps=2, group_size=4, prompts_per_step=4, oversample=4,
                              filter_informative=False, sampling=SamplingSpec(max_new_tokens=48))
    ids_before = vllm_backend._ENGINE.ids.counter if vllm_backend._ENGINE is not None else 0
    # Zero-shot SmolLM2 almost never scores on these vignettes (medcalc_baseline: 0 of 48), and an
    # all-zero batch trains nothing: the share of digits in a completion always varies.
    def digits(p: Problem, c: str, f: bool) -> float:
        return sum(ch.isdigit() for ch in c) / max(1, len(c))

    res = train_round(model, tok, make_rollout("vllm"), pool, digits, cfg, seed=1)
    assert len(res.steps) == 2 and all(torch.isfinite(torch.tensor(s.get("loss", 0.0))) for s in res.steps)
    assert (to_vector(model, layout) != before).any()
    # step 1 attached this adapter, step 2 the one step 1 trained: two fresh ids
    assert vllm_backend._ENGINE is not None and vllm_backend._ENGINE.ids.counter == ids_before + 2
