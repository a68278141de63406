"""How many CPU cores this process may use, and how many worker processes that makes."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one (a launcher
    such as SLURM's --cpus-per-task sets it), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_processes(setting: int | str) -> int:
    """Worker processes of a per-video data stage: a number as given, or for `auto` one for
    every core this process may use (each worker runs one single-threaded video at a time)."""
    return usable_cores() if setting == "auto" else int(setting)
