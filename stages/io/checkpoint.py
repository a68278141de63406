"""Checkpoints written atomically and read without unpickling arbitrary objects.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so
`torch.load(weights_only=True)` can read it back.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from stages.io.checkpoint_archive import check_checkpoint
from stages.io.space import describe, disk_full_cause, free_bytes
from stages.io.temporaries import remove_stale_temporaries, temporary_for
from stages.runtime.errors import ArtifactError, DiskFull


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` through a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    temporary = temporary_for(path)
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        # torch reports a failed write as a RuntimeError of its C++ writer: say it plainly.
        if disk_full_cause(error) is None and "write" not in str(error).lower():
            raise
        raise DiskFull(f"cannot write the checkpoint {path}: {describe(free_bytes(path))} "
                       "free on its device; free some space and pass --resume (the last "
                       "checkpoint is kept)") from None
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors and plain values only), after
    refusing a zip whose members would inflate out of proportion with the file."""
    if not Path(path).is_file():
        raise ArtifactError(f"checkpoint {path} does not exist")
    check_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ArtifactError(f"{path} is not a readable slic checkpoint: it holds objects other "
                            "than tensors and plain values, which slic never unpickles (they "
                            "could run code)") from None
    except Exception as error:  # noqa: BLE001 - report any unreadable file the same way
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ArtifactError(f"{path} is not a readable slic checkpoint ({reason})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ArtifactError(f"{path} is not a slic checkpoint (no 'model' entry)")
    return state
