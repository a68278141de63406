"""The DataLoaders of every learning stage and embedding pass: how many workers, and how they
live.

Workers ship uint8 clips (normalised on the device, `Compute.prepare_clips`); they persist
from epoch to epoch, each item's epoch travels in its sampler key, and each worker keeps
`PREFETCH_BATCHES` batches ready, so a step never waits for a worker to start.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from stages.training.compute import usable_cores

# Batches each worker prepares ahead: W workers keep 2W batches ready, more than the one a
# step takes, while a worker's batch takes W steps' time to make.
PREFETCH_BATCHES = 2
# `workers: auto` on CPU: the model's threads already use every core, so workers beyond a
# few only take turns with them (the old default, 4, capped to the cores).
CPU_TRAINING_WORKERS = 4


def configure_worker(worker_id: int) -> None:
    """DataLoader workers each use one thread: the main process needs the cores for the model."""
    torch.set_num_threads(1)


def cores_of_this_rank() -> int:
    """CPU cores this process may use: its affinity mask where a launcher bound it (SLURM's
    --cpus-per-task), else the node's cores shared among its LOCAL_WORLD_SIZE ranks."""
    cores = usable_cores()
    if cores < (os.cpu_count() or cores):
        return cores
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def training_workers(setting: int | str, device: torch.device) -> int:
    """Worker processes of a training loader. `auto`: on CUDA every core of this rank but one
    (the main process feeds the GPU), on CPU at most CPU_TRAINING_WORKERS; a number is
    capped to the rank's cores (more only take turns)."""
    cores = cores_of_this_rank()
    if setting == "auto":
        return max(1, cores - 1) if device.type == "cuda" else min(CPU_TRAINING_WORKERS, cores)
    return min(int(setting), cores)


def inference_workers(setting: int | str, device: torch.device) -> int:
    """Worker processes of an inference pass. On CUDA as for training; on CPU only the cores
    the model's threads leave free: workers beside it take turns with it (on 2 cores, 2
    workers made embedding 0.75-0.79x a bare model loop, clips made in-process between batches
    0.91-0.93x: benchmarks/RESULTS.md)."""
    if device.type != "cpu":
        return training_workers(setting, device)
    free = max(0, usable_cores() - torch.get_num_threads())
    return free if setting == "auto" else max(0, min(int(setting), free))


def clip_loader(dataset: Dataset, sampler: Sampler | None, *, batch_size: int, workers: int,
                pin_memory: bool, drop_last: bool = False) -> DataLoader:
    """A DataLoader over `dataset` in `sampler`'s order with persistent, single-threaded
    workers that keep PREFETCH_BATCHES batches each ready (pinned when `pin_memory`)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, worker_init_fn=configure_worker,
                      pin_memory=pin_memory, persistent_workers=workers > 0,
                      prefetch_factor=PREFETCH_BATCHES if workers > 0 else None)
