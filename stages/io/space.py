"""Disk space: refuse work that cannot fit before it starts, and turn a full disk met midway
into one line that names the path and the space needed."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from stages.runtime.errors import DiskFull

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: Path) -> int:
    """Free bytes on the device holding `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def describe(size: int) -> str:
    """`size` bytes as text: in GB (2**30 bytes) from 1 GB up, else in MB (2**20 bytes)."""
    return f"{size / 2**30:.2f} GB" if size >= 2**30 else f"{size / 2**20:.1f} MB"


def require_space(path: Path, needed: int, what: str) -> None:
    """Raise DiskFull unless the device of `path` has `needed` bytes free (plus 5%)."""
    free = free_bytes(path)
    if free < needed * 1.05:
        raise DiskFull(f"{what} needs about {describe(needed)} at {path} but only "
                       f"{describe(free)} is free there; free some space or write elsewhere "
                       "(--workspace, --out); finished work is kept and resumes")


def disk_full_cause(error: BaseException) -> OSError | None:
    """The out-of-space OSError behind `error` (itself or a cause in its chain), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` or a cause in its chain reports a full device: an OSError of
    DISK_FULL_ERRNOS, or a native library's error (HDF5's RuntimeError) that quotes one in its
    message ("errno = 28", "No space left on device")."""
    if disk_full_cause(error) is not None:
        return True
    quoted = [f"errno = {code}" for code in DISK_FULL_ERRNOS]
    quoted += [os.strerror(code) for code in DISK_FULL_ERRNOS]
    current: BaseException | None = error
    for _ in range(16):  # a chain is short; a cycle is not followed forever
        if current is None:
            return False
        if any(text in str(current) for text in quoted):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_message(error: OSError, fallback: Path | None = None) -> str:
    """One line for a disk found full midway: the path being written (the error's, else `fallback`),
    the space free there, and the fix."""
    path = Path(error.filename) if error.filename else fallback
    where = f" while writing {path}" if path else ""
    free = f" ({describe(free_bytes(path))} free there)" if path else ""
    return (f"no space left on the device{where}{free}; free some space or write elsewhere "
            "(--workspace, --out); finished work is kept and resumes")
