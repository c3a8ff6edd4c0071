"""Example-level DP-SGD: per-group (per-record) clipping checked on gradients, noise scale,
Poisson sampling, and the trainer hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from secure_fgrpo.data.partition import make_federated_data
from secure_fgrpo.grpo.logprobs import completion_logprobs
from secure_fgrpo.grpo.loss import LossConfig
from secure_fgrpo.grpo.trainer import GRPOConfig, train_round
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.privacy.config import ExampleDPSettings
from secure_fgrpo.privacy.dpsgd import GroupDPSGD, group_loss
from secure_fgrpo.privacy.noise import SecureRandom
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.rollout.base import RolloutBatch

G, GROUPS, T = 4, 3, 6
LOSS = LossConfig(loss_type="dapo", max_completion_length=T)


def _model(path: Path, mode: str = "ffa"):
    base, tok = load_base(str(path))
    model = attach_lora(base, LoraSpec(r=4, mode=mode))
    with torch.no_grad():  # non-zero B so that A (standard mode) gets gradient too
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p, generator=torch.Generator().manual_seed(1)) * 0.05)
    return model, tok


def _batch(model, tok) -> RolloutBatch:
    pool = make_federated_data({"a": {"vitals": 1.0}}, 10, 2, 2, 0).clients["a"].train
    return make_rollout("transformers").generate(model, tok, [p.prompt for p in pool[:GROUPS]], G,
                                                 SamplingSpec(T, 1.0), seed=5)


def _rows(batch: RolloutBatch, groups: list[int]) -> RolloutBatch:
    idx = torch.tensor([k * G + j for k in groups for j in range(G)])
    return RolloutBatch(batch.sequences[idx], batch.attention_mask[idx], batch.completion_mask[idx],
                        batch.prompt_len, [batch.texts[i] for i in idx], [batch.finished[i] for i in idx])


def _advantages(n_groups: int) -> torch.Tensor:
    return torch.tensor([1.5, -0.5, 0.5, -1.5] * n_groups)


def _dp_gradient(model, batch, settings, pool_size) -> list[torch.Tensor]:
    """Σ clipped per-record gradients (noise 0), undoing Opacus' division by q·N."""
    params = [p for p in model.parameters() if p.requires_grad]
    engine = GroupDPSGD(settings, model, torch.optim.SGD(params, lr=0.0), pool_size)
    model.train()
    logps = completion_logprobs(model, batch)
    engine.step(logps, None, _advantages(batch.sequences.shape[0] // G), batch.completion_mask.float(),
                LOSS, None, G)
    out = [p.grad.detach() * settings.sample_rate * pool_size for p in params]
    engine.close()
    return out


def _naive_group_grads(model, batch) -> list[list[torch.Tensor]]:
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    logps = completion_logprobs(model, batch)
    mask, adv = batch.completion_mask.float(), _advantages(GROUPS)
    return [list(torch.autograd.grad(group_loss(logps, logps.detach(), adv, mask, LOSS, None, k, G), params,
                                     retain_graph=True)) for k in range(GROUPS)]


def _norm(gs: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in gs)))


@pytest.mark.parametrize("mode", ["ffa", "standard"])
def test_each_record_contributes_at_most_the_clip_bound(quick_model_dir: Path, mode: str) -> None:
    model, tok = _model(quick_model_dir, mode)
    batch = _batch(model, tok)
    naive = _naive_group_grads(model, batch)
    norms = [_norm(g) for g in naive]
    clip = 0.5 * min(norms)  # every record is clipped
    settings = ExampleDPSettings(noise_multiplier=0.0, max_grad_norm=clip, sample_rate=1.0)

    full = _dp_gradient(model, batch, settings, GROUPS)
    expected = [sum(naive[k][i] * (clip / norms[k]) for k in range(GROUPS)) for i in range(len(full))]
    for got, want in zip(full, expected, strict=True):  # clipping is per group of G rows, not per row
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    for k in range(GROUPS):  # remove record k: the summed gradient moves by at most C
        rest = _dp_gradient(model, _rows(batch, [j for j in range(GROUPS) if j != k]), settings, GROUPS)
        diff = _norm([a - b for a, b in zip(full, rest, strict=True)])
        assert diff <= clip * (1 + 1e-4)
        assert diff == pytest.approx(clip, rel=1e-3)  # and exactly C here, since every norm exceeds it
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())  # hooks and samples removed


def test_noise_has_std_sigma_times_clip_over_expected_batch(quick_model_dir: Path) -> None:
    model, _ = _model(quick_model_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    settings = ExampleDPSettings(noise_multiplier=1.3, max_grad_norm=0.7, sample_rate=0.25)
    engine = GroupDPSGD(settings, model, torch.optim.SGD(params, lr=0.0), pool_size=40)
    engine.empty_step()  # no record at all: pure noise, still a step
    noise = torch.cat([p.grad.flatten() for p in params]).double()
    engine.close()
    assert noise.numel() > 20000
    assert float(noise.std()) == pytest.approx(1.3 * 0.7 / (0.25 * 40), rel=0.03)
    assert abs(float(noise.mean())) < 4 * float(noise.std()) / noise.numel() ** 0.5


def test_poisson_sampling_includes_each_prompt_with_probability_q(quick_model_dir: Path) -> None:
    model, _ = _model(quick_model_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    engine = GroupDPSGD(ExampleDPSettings(1.0, 1.0, 0.2), model, torch.optim.SGD(params, lr=0.0), 50,
                        source=SecureRandom(bytes(32)))
    counts = np.zeros(50)
    for _ in range(400):
        for i in engine.sample(list(range(50))):
            counts[i] += 1
    engine.close()
    assert counts.sum() / (400 * 50) == pytest.approx(0.2, abs=0.01)  # 20000 draws: 5 sd ~ 0.014
    assert counts.min() > 0.1 * 400  # every prompt, not a fixed subset


def test_a_private_round_without_signal_still_moves_the_adapter_by_noise(quick_model_dir: Path) -> None:
    """A constant reward leaves no informative group: the non-private loop skips the step, the
    private one takes it anyway (whether a step happened must not depend on the data)."""
    cfg = GRPOConfig(steps=2, group_size=4, prompts_per_step=4, oversample=6,
                     sampling=SamplingSpec(T, 1.0), loss=LOSS)
    pool = make_federated_data({"a": {"vitals": 1.0}}, 20, 2, 2, 0).clients["a"].train
    moved = {}
    for dp in (None, ExampleDPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.3)):
        model, tok = _model(quick_model_dir)
        before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        res = train_round(model, tok, make_rollout("transformers"), pool, lambda *_: 1.0, cfg, seed=0, dp=dp)
        after = [p.detach() for p in model.parameters() if p.requires_grad]
        moved[dp is not None] = _norm([a - b for a, b in zip(after, before, strict=True)])
        # no group was trained on; under DP n_i is the public expected batch all the same
        assert res.groups == (0 if dp is None else round(cfg.steps * dp.sample_rate * len(pool)))
    assert moved[False] == 0.0
    assert moved[True] > 0.0
