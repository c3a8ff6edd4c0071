"""ServerApp entry point (pyproject.toml); the code lives in the installed secure_fgrpo."""

from secure_fgrpo.flower.server_app import app

__all__ = ["app"]
