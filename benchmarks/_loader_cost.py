"""What pretraining's real loader costs the CPU: clips/s and CPU-ms per clip of its workers.

Shared by `bench_pretrain_loader.py --cpu-ms` and `gpu_check.py run`. The figure is the
process CPU time (user + system, from /proc) of the DataLoader's worker processes over one
whole epoch, divided by the clips they made (three a training item: anchor, positive,
augmented anchor). A first epoch warms the workers up (fork, HDF5 handles, caches) and is
not counted; persistent workers sit idle between epochs, so the second epoch's CPU time is
exactly its own work, whatever else runs on the machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from stages.clips.store import ClipStore
from stages.clips.triplets import EpochSampler, TripletClips
from stages.pretrain_config import PretrainConfig
from stages.slic_training import triplet_settings
from stages.training.loading import clip_loader, stop_workers

CLIPS_PER_ITEM = 3


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def training_items(store: ClipStore, crop: int, clip_length: int, colour_on: str
                   ) -> TripletClips:
    """Every video of `store` as a training item with the pretrain defaults at `crop` x
    `clip_length`, in four pseudo-clusters so that positives come from other videos too;
    `colour_on` worker or device (the workers leave the colour operations to the GPU)."""
    settings = triplet_settings(PretrainConfig(clip_length=clip_length, crop_size=crop,
                                               colour_on=colour_on))
    videos = np.arange(len(store.table))
    items = TripletClips(store, videos, settings, seed=0)
    items.set_clusters(videos % 4)
    return items


def measure_loader(store: ClipStore, *, crop: int, clip_length: int, batch_size: int,
                   workers: int, batches: int, colour_on: str = "device"
                   ) -> dict[str, float]:
    """Clips/s and worker CPU-ms per clip of `batches` batches of the pretrain loader.

    The items are drawn with replacement from `store`'s videos so that an epoch holds
    `batches` batches however few videos there are. `colour_on` device is what pretrain
    does on CUDA (the default there), worker what it does on CPU. Returns clips_per_second
    (wall, the loader alone), cpu_ms_per_clip and workers.
    """
    items = training_items(store, crop, clip_length, colour_on)
    sampler = RepeatingSampler(EpochSampler(len(items), seed=0), batches * batch_size)
    loader = clip_loader(items, sampler, batch_size=batch_size, workers=workers,
                         pin_memory=False)
    for _ in loader:  # warm-up epoch: workers start, open their files
        pass
    pids = [worker.pid for worker in loader._iterator._workers]  # noqa: SLF001
    before = sum(process_cpu_seconds(pid) for pid in pids)
    sampler.set_epoch(1)
    started = time.perf_counter()
    count = 0
    for batch in loader:
        count += len(batch["index"]) * CLIPS_PER_ITEM
    wall = time.perf_counter() - started
    cpu = sum(process_cpu_seconds(pid) for pid in pids) - before
    stop_workers(loader)
    return {"clips_per_second": count / wall, "cpu_ms_per_clip": 1000 * cpu / count,
            "workers": float(workers)}


class RepeatingSampler(EpochSampler):
    """An `EpochSampler` stretched to `length` items: epochs of the wrapped permutation one
    after another (the loader's epoch is carried as the sampler's)."""

    def __init__(self, inner: EpochSampler, length: int) -> None:
        super().__init__(inner.size, inner.seed, inner.rank, inner.world)
        self.length = length

    def __iter__(self):
        produced, round_ = 0, 0
        while produced < self.length:
            inner = EpochSampler(self.size, self.seed)
            inner.set_epoch(self.epoch * 1_000 + round_)
            for key in inner:
                if produced == self.length:
                    return
                produced += 1
                yield key
            round_ += 1

    def __len__(self) -> int:
        return self.length
