"""Temporary files of atomic writes: `.<name>.writing-<pid>` beside the file being written.

A process killed mid-write (or stopped by a full disk) leaves its temporary behind; the next
write of the same file removes those of processes that no longer exist.
"""

from __future__ import annotations

import os
from pathlib import Path


def temporary_for(path: Path) -> Path:
    """This process's temporary name for writing `path`."""
    return path.with_name(f".{path.name}.writing-{os.getpid()}")


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or someone else's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries of `path` left by dead processes; returns what was removed."""
    removed = []
    prefix = f".{path.name}.writing-"
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.glob(f"{prefix}*"):
        owner = candidate.name[len(prefix):]
        if owner.isdigit() and int(owner) != os.getpid() and not process_alive(int(owner)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed
