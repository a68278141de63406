"""The DataLoaders of every learning stage and embedding pass: how many workers, and how they
live.

Workers ship uint8 clips (normalised on the device, `Compute.prepare_clips`); they persist
from epoch to epoch, each item's epoch travels in its sampler key, and each worker keeps
`PREFETCH_BATCHES` batches ready, so a step never waits for a worker to start.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

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
    workers that keep PREFETCH_BATCHES batches each ready (pinned when `pin_memory`), batched
    by `clip_collate`."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, worker_init_fn=configure_worker,
                      collate_fn=clip_collate, pin_memory=pin_memory,
                      persistent_workers=workers > 0,
                      prefetch_factor=PREFETCH_BATCHES if workers > 0 else None)


def stop_workers(loader: DataLoader | None) -> None:
    """Stop `loader`'s persistent worker processes now (they live as long as the loader).

    Left to the garbage collector, they stop late and slowly: a loader freed as part of a
    reference cycle has its queues' feeder threads closed before torch's shutdown asks the
    workers to stop, so it waits 5 s for each worker (10 s after a 2-worker pretrain, 75 s
    after a 15-worker one), at whatever moment the collector runs. No-op for None or a
    loader without running workers."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        loader._iterator = None
        iterator._shutdown_workers()


def clip_collate(items: list) -> object:
    """`default_collate`, except that clips ((3, T, S, S) uint8 views of channels-last frames)
    are stacked frame memory to frame memory into (B, 3, T, S, S) channels-last: a plain copy,
    and the layout the GPU takes as it is. Dicts and tuples are collated key by key."""
    first = items[0]
    if isinstance(first, torch.Tensor) and first.dtype == torch.uint8 and first.dim() == 4:
        return _stack_channels_last(items)
    if isinstance(first, dict):
        return {key: clip_collate([item[key] for item in items]) for key in first}
    if isinstance(first, tuple):
        return tuple(clip_collate(list(column)) for column in zip(*items))
    return default_collate(items)


def _stack_channels_last(clips: list[torch.Tensor]) -> torch.Tensor:
    """B clips (3, T, S, S) -> (B, 3, T, S, S) uint8 in channels-last 3D memory; in shared
    memory inside a worker, so that passing it to the main process copies nothing."""
    frames = [clip.permute(1, 2, 3, 0) for clip in clips]  # (T, S, S, 3) views
    batch = torch.empty((len(frames), *frames[0].shape), dtype=torch.uint8)
    if get_worker_info() is not None:
        batch.share_memory_()
    torch.stack(frames, out=batch)
    return batch.permute(0, 4, 1, 2, 3)
