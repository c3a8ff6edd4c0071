"""Generation backends behind one interface."""

from .base import RolloutBackend, RolloutBatch, SamplingSpec


def make_rollout(name: str) -> RolloutBackend:
    if name == "transformers":
        from .hf import HFRollout

        return HFRollout()
    if name == "vllm":
        raise RuntimeError("rollout.backend = 'vllm' needs a GPU and the 'vllm' extra "
                           "(pip install 'secure_fgrpo[vllm]'); it is not available in this install")
    raise ValueError(f"rollout.backend: unknown backend {name!r} (transformers | vllm)")


__all__ = ["RolloutBackend", "RolloutBatch", "SamplingSpec", "make_rollout"]
