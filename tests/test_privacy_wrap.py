"""DP wraps the local loop's steps the way Opacus wraps an optimizer (privacy/dpsgd.py make_private):
the same model and the user's own optimizer, handed back private; the loop itself has no DP branch."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from secure_fgrpo.grpo.trainer import GRPOConfig, LocalSteps
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.privacy.config import ExampleDPSettings
from secure_fgrpo.privacy.dpsgd import PrivateSteps


def test_make_private_wraps_the_users_optimizer_and_leaves_no_hooks(quick_model_dir: Path) -> None:
    base, _ = load_base(str(quick_model_dir))
    model = attach_lora(base, LoraSpec(r=4))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    cfg = GRPOConfig(steps=2, group_size=4, prompts_per_step=2, oversample=4)
    plain = LocalSteps(model, opt, cfg, random.Random(0))
    settings = ExampleDPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.25)
    private = settings.make_private(plain, pool_size=20)

    assert isinstance(private, PrivateSteps) and private.model is model
    assert private.engine.optimizer.original_optimizer is opt  # Opacus' DPOptimizer around the user's own
    assert not private.shares_prefix_in_loss and plain.shares_prefix_in_loss
    assert plain.trim(list(range(5))) == [0, 1]  # the plain loop caps the groups per step ...
    assert private.trim(list(range(5))) == list(range(5))  # ... a cap would couple records under DP
    before = [p.detach().clone() for p in params]
    private.skip()  # a step with no record still adds its noise: whether it happened must not leak
    assert private.engine.noisy_steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))
    plain.skip()  # the plain loop takes no step
    assert private.engine.noisy_steps == 1
    result = private.finish([], groups=0, steps=[])
    assert result.groups == round(cfg.steps * settings.sample_rate * 20)  # the public expected batch
    assert not any(hasattr(p, "grad_sample") for p in params)  # Opacus' hooks and attributes removed
