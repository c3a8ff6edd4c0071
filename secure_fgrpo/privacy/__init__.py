"""Differential privacy: example-level DP-SGD (dpsgd.py), client-level noise on [e·Δ, e]
(client_dp.py), secret noise (noise.py), accounting (accountant.py), the run's plan (plan.py).
Submodules are imported where used: Opacus is heavy and non-private runs never need it."""
