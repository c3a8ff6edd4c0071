"""model.device: names refused when the config is read, a missing GPU refused when the run
starts, and (on a machine with CUDA) the same adapter, rollouts and DP-SGD on the GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.data.partition import make_federated_data
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.grpo.loss import LossConfig
from secure_fgrpo.grpo.trainer import GRPOConfig, train_round
from secure_fgrpo.model.device import resolve_device
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.privacy.config import ExampleDPSettings
from secure_fgrpo.privacy.noise import SecureRandom
from secure_fgrpo.rollout import SamplingSpec, make_rollout

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device: torch.cuda.is_available() is False")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_malformed_device_names_are_refused_naming_the_key(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(small_run(**{"model.device": name}))
    assert err.value.key == "model.device"


def test_devices_resolve_against_what_this_machine_has() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    if CUDA:
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(ConfigError, match=r"model.device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:  # a GPU that is not there stops the run; it never falls back to hours of CPU
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA device: a missing GPU cannot be provoked")
def test_a_federation_asking_for_a_missing_gpu_stops_before_its_first_round(tmp_path: Path) -> None:
    cfg = config_from_dict(small_run(**{"model.device": "cuda"}))
    with pytest.raises(ConfigError, match=r"model.device"):
        Federation(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "server" / "metrics.jsonl").exists()


def test_secure_noise_lands_on_the_device_of_the_gradient() -> None:
    ref = torch.zeros(4, 3, device=resolve_device("auto"), dtype=torch.float32)
    noise = SecureRandom(bytes(32)).normal_like(ref, 2.0)
    assert noise.device == ref.device and noise.dtype == ref.dtype and noise.shape == ref.shape
    assert float(noise.abs().sum()) > 0.0


@needs_cuda
def test_ffa_adapter_is_the_same_on_gpu_and_cpu(quick_model_dir: Path) -> None:
    """Every party must build the same frozen A, whichever device it runs on."""
    adapters = {}
    for device in ("cpu", "cuda"):
        base, _ = load_base(str(quick_model_dir), device=device)
        model = attach_lora(base, LoraSpec(r=4))
        adapters[device] = {n: p.detach().cpu() for n, p in model.named_parameters() if "lora_" in n}
        assert all(p.device.type == device for p in model.parameters())
    assert adapters["cpu"].keys() == adapters["cuda"].keys()
    for n, p in adapters["cpu"].items():
        assert torch.equal(p, adapters["cuda"][n]), n


@needs_cuda
@pytest.mark.parametrize("private", [False, True])
def test_a_gpu_round_trains_the_adapter(quick_model_dir: Path, private: bool) -> None:
    base, tok = load_base(str(quick_model_dir), device="cuda")
    model = attach_lora(base, LoraSpec(r=4))
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    pool = make_federated_data({"a": {"vitals": 1.0}}, 40, 2, 2, 0).clients["a"].train
    cfg = GRPOConfig(steps=3, group_size=4, prompts_per_step=8, oversample=8, sampling=SamplingSpec(6, 1.0),
                     loss=LossConfig(loss_type="dapo", max_completion_length=6))
    dp = ExampleDPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.2) if private else None
    rewards = iter(np.random.default_rng(0).integers(0, 2, 10_000).tolist())  # varied: informative groups
    res = train_round(model, tok, make_rollout("transformers"), pool, lambda *_: float(next(rewards)), cfg,
                      seed=0, dp=dp)
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    assert all(a.device.type == "cuda" for a in after)
    moved = sum(float((a - b).norm()) for a, b in zip(after, before, strict=True))
    assert np.isfinite(moved) and moved > 0.0
    assert res.groups == (round(3 * 0.2 * len(pool)) if private else sum(s["groups"] for s in res.steps))


@needs_cuda
def test_a_gpu_federation_records_its_rounds(quick_model_dir: Path, tmp_path: Path) -> None:
    cfg = config_from_dict(small_run(**{"model.device": "cuda", "privacy.example_level": {"epsilon": 8.0}}))
    Federation(cfg, tmp_path / "run").run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "server" / "metrics.jsonl").read_text().splitlines() if x]
    assert [r["round"] for r in rows] == [1, 2] and all(0.0 <= r["global_accuracy"] <= 1.0 for r in rows)


@pytest.mark.parametrize("device", ["gpu", *([] if CUDA else ["cuda"])])
def test_demo_refuses_a_device_it_cannot_use_before_it_starts(device: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from secure_fgrpo.cli import main

    assert main(["demo", "--device", device, "--out", str(tmp_path / "run")]) == 2
    assert "model.device" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
