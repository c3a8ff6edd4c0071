"""GRPO: group advantages, the policy-loss variants, and the local training loop."""
