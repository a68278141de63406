"""One training process per run folder: a second one stops at start-up instead of
interleaving its checkpoints and metrics with the first's."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stages.runtime.errors import ConfigError

LOCK_NAME = ".lock"


@contextmanager
def run_folder_lock(folder: Path, active: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if needed) while the block runs; the lock
    file names the holder's pid. The kernel drops the lock when the process dies, so a killed
    run never leaves a stale lock. `active=False` (ranks other than 0) takes no lock."""
    if not active:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "?"
            raise ConfigError(f"{folder} is in use by process {holder}, which is training "
                              "there; wait for it to finish, or choose another run folder "
                              "(--run-name, --run)") from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(handle)
