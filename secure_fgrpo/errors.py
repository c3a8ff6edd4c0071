"""Typed errors a user can act on. Each message is one line that names the file, folder or
config key at fault; the CLI prints it without a traceback. Anything else is a bug and keeps
its traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a refused action, explained in one line. ``exit_code`` is the CLI's."""

    exit_code = 2


class RunFolderError(UserError):
    """A run folder (``--out``, ``RUN``) that cannot be used as asked: not ours, a different
    config, a file, read-only."""


class DataFileError(UserError, ValueError):
    """An institution's data file that cannot be trained on (a ValueError, as before)."""


class CheckpointError(UserError):
    """A saved state file (checkpoint, client state, server state) that cannot be read."""


class RunFailed(UserError):
    """The run finished without training anything (every round aborted)."""

    exit_code = 1
