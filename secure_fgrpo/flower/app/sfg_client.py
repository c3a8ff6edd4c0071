"""ClientApp entry point (pyproject.toml); imports neither flwr.serverapp nor the training stack."""

from secure_fgrpo.flower.client_app import app

__all__ = ["app"]
