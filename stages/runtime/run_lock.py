"""One writer at a time: one training process per run folder, and one process writing each
artifact (or each shard of a data stage's artifact). A second one stops at start-up with one
line naming the holder instead of interleaving its work with the first's.

The lock is an flock on a file that names the holder's pid. The kernel drops it when the
holder dies, so the lock file of a killed process is stale and the next writer takes it over.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stages.runtime.errors import ConfigError, SlicError

LOCK_NAME = ".lock"


def _try_lock(path: Path) -> int | str:
    """An open descriptor of `path` (created if needed) holding its exclusive lock, or the pid
    written in it by the live process that holds it ("?" when it names none)."""
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "?"
            os.close(handle)
            return holder
        try:
            same = os.path.samestat(os.fstat(handle), os.stat(path))
        except FileNotFoundError:  # its holder removed it as it released it
            same = False
        if same:
            os.ftruncate(handle, 0)
            os.pwrite(handle, str(os.getpid()).encode(), 0)
            return handle
        os.close(handle)  # locked a file already removed: lock the one at `path` now


@contextmanager
def run_folder_lock(folder: Path, active: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if needed) while the block runs; the lock
    file names the holder's pid. The kernel drops the lock when the process dies, so a killed
    run never leaves a stale lock. `active=False` (ranks other than 0) takes no lock."""
    if not active:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = _try_lock(folder / LOCK_NAME)
    if isinstance(handle, str):
        raise ConfigError(f"{folder} is in use by process {handle}, which is training "
                          "there; wait for it to finish, or choose another run folder "
                          "(--run-name, --run)")
    try:
        yield
    finally:
        os.close(handle)


def artifact_lock_path(output: Path, part: str = "") -> Path:
    """The lock file of the artifact `output` (of its `part`, such as a shard, when given):
    `.<name>[.<part>].lock` beside it."""
    return output.with_name(f".{output.name}{'.' + part if part else ''}.lock")


@contextmanager
def artifact_lock(output: Path, stage: str, part: str = "") -> Iterator[None]:
    """Hold the lock of the artifact `output` (of its `part` only, when given: shards of one
    artifact are written at once on purpose) while `stage` writes it. A second writer raises
    ConfigError naming `output` and the holder's pid; the lock of a dead writer is taken
    over. The lock file is removed on release."""
    path = artifact_lock_path(output, part)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        handle = _try_lock(path)
    except OSError as error:
        raise SlicError(f"cannot write to {output.parent}: {error.strerror}; choose a "
                        "writable --workspace or --out") from None
    if isinstance(handle, str):
        which = f" ({part})" if part else ""
        raise ConfigError(f"{output}{which} is being written by process {handle}, another "
                          f"slic {stage}; wait for it to finish, or write elsewhere "
                          "(--out, --workspace)")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked: a waiting writer then retries
        os.close(handle)
