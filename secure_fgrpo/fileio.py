"""Writing files that may hold secrets or private state: atomically, mode 0600, in a 0700
folder. One implementation, so no caller forgets the permissions or a short write."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: Path, tmp: Path) -> Iterator[None]:
    """Around a write of ``tmp`` then its rename to ``path``: on failure (a full disk) the
    temp file is removed and the OSError names ``path``, the file the caller meant to write."""
    try:
        yield
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600) via a 0600 temp file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    with atomic_target(path, tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a temp file left by a crash
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
