"""Generation backends behind one interface."""

from .base import RolloutBackend, RolloutBatch, SamplingSpec


def make_rollout(name: str) -> RolloutBackend:
    if name == "transformers":
        from .hf import HFRollout

        return HFRollout()
    if name == "vllm":  # refuses in one line on a machine without CUDA or without vllm
        from .vllm import VLLMRollout

        return VLLMRollout()
    raise ValueError(f"model.rollout: unknown backend {name!r} (transformers | vllm)")


__all__ = ["RolloutBackend", "RolloutBatch", "SamplingSpec", "make_rollout"]
