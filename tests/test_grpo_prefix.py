"""Shared-prefix forward (grpo/prefix.py): the same log-probs and LoRA gradients as the plain
forward (≤ 1e-5, float32), on the embedded model's real rollouts and on a random small Llama
with left-padded prompts of different lengths; the trainer's switch, and its DP fallback."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from unittest import mock

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from secure_fgrpo.configio import ConfigError, build
from secure_fgrpo.data.partition import make_federated_data
from secure_fgrpo.grpo.logprobs import completion_logprobs
from secure_fgrpo.grpo.loss import LossConfig, policy_loss
from secure_fgrpo.grpo.prefix import prompt_groups
from secure_fgrpo.grpo.trainer import GRPOConfig, train_round
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.privacy.config import ExampleDPSettings
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.rollout.base import RolloutBatch

T, G = 6, 4
TOL = 1e-5


def _random_b(model: torch.nn.Module) -> torch.nn.Module:
    """Non-zero B so that the adapter changes the forward and A gets gradient too."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p, generator=torch.Generator().manual_seed(1)) * 0.05)
    return model


def _logps_and_grads(model: torch.nn.Module, batch: RolloutBatch, shared: bool,
                     detach_prefix: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    with mock.patch.object(DynamicCache, "batch_select_indices", _cut_then_select) if detach_prefix \
            else contextlib.nullcontext():
        logps = completion_logprobs(model, batch, 0.7, shared_prefix=shared)
    mask = batch.completion_mask.float()
    adv = torch.linspace(-1.5, 1.5, logps.shape[0])
    loss = policy_loss(logps, logps.detach() - 0.01, adv, mask, LossConfig(max_completion_length=T)).loss
    grads = torch.autograd.grad(loss, params)
    return (logps * mask).detach(), [g.detach() for g in grads]


def _cut_then_select(cache: DynamicCache, indices: torch.Tensor) -> None:
    """The mutant: the prompt's keys/values cut from the graph before they are shared."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys.detach(), layer.values.detach()
    _SELECT(cache, indices)


_SELECT = DynamicCache.batch_select_indices


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def _assert_same(model: torch.nn.Module, batch: RolloutBatch) -> None:
    lp_plain, g_plain = _logps_and_grads(model, batch, shared=False)
    lp_shared, g_shared = _logps_and_grads(model, batch, shared=True)
    assert float((lp_plain - lp_shared).abs().max()) <= TOL
    assert _max_diff(g_plain, g_shared) <= TOL
    assert max(float(g.abs().max()) for g in g_plain) > 1e-3  # the comparison is not of zeros
    # teeth: the prompt's KV must pass gradient; cut it and the LoRA gradients differ
    _, g_cut = _logps_and_grads(model, batch, shared=True, detach_prefix=True)
    assert _max_diff(g_plain, g_cut) > 100 * TOL


# ----------------------------------------------------------------------------- embedded model
def test_shared_prefix_equals_plain_on_embedded_rollouts(quick_model_dir: Path) -> None:
    """Real rollouts of prompts from three families (different lengths, so left padding)."""
    base, tok = load_base(str(quick_model_dir))
    model = _random_b(attach_lora(base, LoraSpec(r=4, mode="standard")))
    data = make_federated_data({"a": {"vitals": 0.4, "choice": 0.3, "unit": 0.3}}, 30, 3, 2, 0)
    pool = data.clients["a"].train
    prompts = sorted({p.prompt for p in pool}, key=len)
    prompts = [prompts[0], prompts[len(prompts) // 2], prompts[-1]]
    batch = make_rollout("transformers").generate(model, tok, prompts, G, SamplingSpec(T, 1.0), seed=5)
    prompt_att = batch.attention_mask[:, : batch.prompt_len]
    assert len(set(prompt_att.sum(1).tolist())) == 3  # three prompt lengths: padding differs by group
    assert not bool(batch.completion_mask.all())  # some completion ended early (masked tail)
    _assert_same(model, batch)


# ----------------------------------------------------------------------------- random Llama
def _llama_batch(prompt_lens: list[int], g: int, t: int, vocab: int, eos: int, pad: int) -> RolloutBatch:
    """Left-padded prompts of the given lengths, ``g`` random completions each, some ending at EOS."""
    gen = torch.Generator().manual_seed(3)
    p = max(prompt_lens)
    seqs, atts, masks = [], [], []
    for i, n in enumerate(prompt_lens):
        prompt = torch.randint(3, vocab, (n,), generator=gen)
        for j in range(g):
            comp = torch.randint(3, vocab, (t,), generator=gen)
            end = t if (i + j) % 3 == 0 else min(t, 1 + (i * g + j) % max(t - 1, 1))  # EOS position or no EOS
            cmask = (torch.arange(t) < end).long() if end == t else (torch.arange(t) <= end).long()
            if end < t:
                comp[end] = eos
            comp = torch.where(cmask.bool(), comp, torch.full_like(comp, pad))
            seqs.append(torch.cat([torch.full((p - n,), pad), prompt, comp]))
            atts.append(torch.cat([torch.zeros(p - n, dtype=torch.long), torch.ones(n, dtype=torch.long), cmask]))
            masks.append(cmask)
    return RolloutBatch(torch.stack(seqs), torch.stack(atts), torch.stack(masks), p,
                        [""] * len(seqs), [True] * len(seqs))


def _llama(attn: str = "sdpa") -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=101, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, eos_token_id=2, bos_token_id=1, attn_implementation=attn)
    return _random_b(attach_lora(LlamaForCausalLM(cfg).float(), LoraSpec(r=4, mode="standard")))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prefix_equals_plain_on_a_random_llama_with_padded_prompts(attn: str) -> None:
    batch = _llama_batch([9, 4, 13], g=3, t=T, vocab=101, eos=2, pad=0)
    _assert_same(_llama(attn), batch)


def test_prompt_groups_split_by_prompt_and_by_padding() -> None:
    """Rows share a prefix only when tokens and mask agree: equal ids with different padding
    (a pad id that is also a real token) are different prompts."""
    batch = _llama_batch([5, 5, 3], g=2, t=3, vocab=101, eos=2, pad=0)
    first, inverse = prompt_groups(batch)
    assert first.tolist() == [0, 2, 4] and inverse.tolist() == [0, 0, 1, 1, 2, 2]
    att = batch.attention_mask.clone()
    att[5, 0] = 1  # row 5 now claims its first (pad-id) token as a real one
    first, inverse = prompt_groups(RolloutBatch(batch.sequences, att, batch.completion_mask,
                                                batch.prompt_len, batch.texts, batch.finished))
    assert first.tolist() == [0, 2, 4, 5] and inverse.tolist() == [0, 0, 1, 1, 2, 3]


@pytest.mark.parametrize("t", [T, 1])
def test_uneven_runs_of_one_prompt_still_match(t: int) -> None:
    """Groups of different sizes (the gather is by index, not a fixed repeat); and a one-token
    completion, where the prompt pass alone gives the answer."""
    full = _llama_batch([7, 11], g=4, t=t, vocab=101, eos=2, pad=0)
    rows = torch.tensor([0, 1, 4, 5, 6, 7])
    batch = RolloutBatch(full.sequences[rows], full.attention_mask[rows], full.completion_mask[rows],
                         full.prompt_len, [""] * 6, [True] * 6)
    model = _llama()
    lp_plain, g_plain = _logps_and_grads(model, batch, shared=False)
    lp_shared, g_shared = _logps_and_grads(model, batch, shared=True)
    assert float((lp_plain - lp_shared).abs().max()) <= TOL and _max_diff(g_plain, g_shared) <= TOL


# ----------------------------------------------------------------------------- trainer
def _round(path: Path, shared: bool, dp: ExampleDPSettings | None = None) -> list[torch.Tensor]:
    cfg = GRPOConfig(steps=1, group_size=G, prompts_per_step=4, oversample=6, mu=2, shared_prefix=shared,
                     sampling=SamplingSpec(T, 1.0), loss=LossConfig(max_completion_length=T, beta=0.05))
    pool = make_federated_data({"a": {"vitals": 0.5, "unit": 0.5}}, 20, 2, 2, 0).clients["a"].train
    base, tok = load_base(str(path))
    model = attach_lora(base, LoraSpec(r=4))
    reward = lambda problem, text, done: float(len(text) % 2)  # noqa: E731
    train_round(model, tok, make_rollout("transformers"), pool, reward, cfg, seed=0, dp=dp,
                make_optimizer=lambda ps: torch.optim.SGD(ps, lr=0.5))
    return [p.detach().clone() for p in model.parameters() if p.requires_grad]


def test_trainer_shared_prefix_takes_the_same_steps(quick_model_dir: Path) -> None:
    """mu = 2 and beta > 0: the old, reference and loss passes all go through the switch."""
    plain, shared = _round(quick_model_dir, False), _round(quick_model_dir, True)
    assert max(float(p.abs().max()) for p in plain) > 1e-3  # the round did move the adapter
    assert _max_diff(plain, shared) <= TOL


def test_dp_sgd_keeps_the_plain_loss_pass_and_says_so(quick_model_dir: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    dp = ExampleDPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.5)
    with caplog.at_level(logging.INFO, logger="secure_fgrpo.privacy.dpsgd"):
        _round(quick_model_dir, True, dp=dp)
    assert any("grpo.shared_prefix" in r.getMessage() and "DP-SGD" in r.getMessage() for r in caplog.records)


def test_config_key_is_strict() -> None:
    assert build(GRPOConfig, {"shared_prefix": False}, "grpo").shared_prefix is False
    assert GRPOConfig().shared_prefix is True
    with pytest.raises(ConfigError) as err:
        build(GRPOConfig, {"shared_prefix": "yes"}, "grpo")
    assert err.value.key == "grpo.shared_prefix"


def test_a_model_without_a_kv_cache_is_refused_by_name() -> None:
    """A model that returns no cache cannot share a prefix: one line naming the key, not a traceback
    from deep inside the cache code."""
    model = _llama()
    batch = _llama_batch([4, 6], g=2, t=3, vocab=101, eos=2, pad=0)
    original = model.forward

    def no_cache(*args: object, **kwargs: object):
        out = original(*args, **kwargs)
        out.past_key_values = None
        return out

    refused = pytest.raises(RuntimeError, match=r"grpo.shared_prefix = false")
    with mock.patch.object(model, "forward", no_cache), refused:
        completion_logprobs(model, batch, shared_prefix=True)
