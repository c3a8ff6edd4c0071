"""Tokenizer, adapter <-> vector layout, LoRA modes, and loading any model by path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from peft import PeftModel

from secure_fgrpo.grpo.logprobs import completion_logprobs
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.model.tokenizer import build_char_tokenizer
from secure_fgrpo.model.vector import VectorLayout, load_vector, to_vector
from secure_fgrpo.rollout import SamplingSpec, make_rollout


def test_char_tokenizer_round_trips_without_spaces() -> None:
    tok = build_char_tokenizer()
    ids = tok("3 g to mg=")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert len(ids) == 1 + len("3 g to mg=")
    assert tok.decode(ids, skip_special_tokens=True) == "3 g to mg="


def test_tokenizer_loaded_by_path_encodes_like_the_built_one(quick_model_dir) -> None:
    """Regression: AutoTokenizer picked Qwen2's byte-level class from config.json and dropped spaces."""
    _, tok = load_base(str(quick_model_dir))
    text = "hr 112 >100?="
    assert tok(text)["input_ids"] == build_char_tokenizer()(text)["input_ids"]
    assert tok.padding_side == "left"


def test_vector_round_trip_is_bit_exact(quick_model_dir) -> None:
    base, _ = load_base(str(quick_model_dir))
    model = attach_lora(base, LoraSpec(r=4, mode="standard"))
    layout = VectorLayout.of(model)
    v = np.random.default_rng(0).standard_normal(layout.size).astype(np.float32)
    load_vector(model, layout, v)
    assert np.array_equal(to_vector(model, layout), v)
    assert layout.names == tuple(sorted(layout.names))
    with pytest.raises(ValueError, match="layout expects"):
        load_vector(model, layout, v[:-1])


def test_ffa_freezes_a_and_shares_it_across_parties(quick_model_dir) -> None:
    a1 = attach_lora(load_base(str(quick_model_dir))[0], LoraSpec(r=4, mode="ffa", init_seed=5))
    a2 = attach_lora(load_base(str(quick_model_dir))[0], LoraSpec(r=4, mode="ffa", init_seed=5))
    lay = VectorLayout.of(a1)
    assert all("lora_B" in n for n in lay.names)
    s1, s2 = dict(a1.named_parameters()), dict(a2.named_parameters())
    for n in s1:
        if "lora_A" in n:
            assert not s1[n].requires_grad and torch.equal(s1[n], s2[n])
    std = attach_lora(load_base(str(quick_model_dir))[0], LoraSpec(r=4, mode="standard"))
    std_layout = VectorLayout.of(std)
    assert {n for n in std_layout.names if "lora_B" in n} == set(lay.names)
    assert any("lora_A" in n for n in std_layout.names) and std_layout.size > lay.size


def test_saved_model_and_adapter_reload_by_path(quick_model_dir, tmp_path) -> None:
    """The 'any causal LM by local path' route is the same code: save, reload, compare."""
    base, tok = load_base(str(quick_model_dir))
    base.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    model = attach_lora(load_base(str(tmp_path / "m"))[0], LoraSpec(r=4))
    layout = VectorLayout.of(model)
    v = np.linspace(-0.1, 0.1, layout.size, dtype=np.float32)
    load_vector(model, layout, v)
    model.save_pretrained(tmp_path / "adapter")
    again = PeftModel.from_pretrained(load_base(str(tmp_path / "m"))[0], tmp_path / "adapter")
    ids = tok(["hr 120 >100?="], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**ids).logits, again(**ids).logits, atol=1e-6)
    got = dict(again.named_parameters())
    for name in layout.names:
        assert name in got


def test_generation_positions_match_logprob_recompute(quick_model_dir) -> None:
    """Left padding: the log-probs used for training equal those generation sampled from."""
    base, tok = load_base(str(quick_model_dir))
    model = attach_lora(base, LoraSpec(r=4))
    prompts = ["3 g to mg=", "fever? a)36.8 b)40.3 c)36.5="]
    batch = make_rollout("transformers").generate(model, tok, prompts, 3, SamplingSpec(6, 1.0), seed=0)
    enc = tok([p for p in prompts for _ in range(3)], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=1, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
        first = torch.log_softmax(out.logits[0].float(), -1)
        lp = completion_logprobs(model, batch)
    tok0 = batch.sequences[:, batch.prompt_len]
    assert torch.allclose(lp[:, 0], first.gather(-1, tok0[:, None]).squeeze(-1), atol=1e-5)
    # masks: EOS kept, everything after it masked and padded
    for row, done in zip(range(len(batch.texts)), batch.finished, strict=True):
        m = batch.completion_mask[row]
        if done:
            last = int(m.sum()) - 1
            assert batch.sequences[row, batch.prompt_len + last] == tok.eos_token_id
            assert (batch.sequences[row, batch.prompt_len + last + 1 :] == tok.pad_token_id).all()
    never = {tok.pad_token_id, tok.bos_token_id}
    comp = batch.sequences[:, batch.prompt_len:][batch.completion_mask.bool()]
    assert not set(comp.tolist()) & never
