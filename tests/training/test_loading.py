"""The loaders of the learning stages: worker counts, persistent workers that take the epoch
from their sampler, and uint8 clips normalised on the device."""

import multiprocessing
import os

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from stages.clips.augment import IMAGENET_MEAN, IMAGENET_STD
from stages.clips.triplets import EpochSampler
from stages.training import loading
from stages.training.compute import Compute
from stages.training.distributed import Distribution
from stages.training.loading import (
    clip_loader,
    configure_worker,
    cores_of_this_rank,
    inference_workers,
    stop_workers,
    training_workers,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def machine(monkeypatch, cores: int, bound: int | None = None, ranks: int = 1) -> None:
    """`cores` on the node, this process bound to `bound` of them (None: to all)."""
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(loading, "usable_cores", lambda: bound or cores)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(ranks))


def test_a_rank_gets_its_share_of_the_node_unless_a_launcher_bound_it(monkeypatch):
    machine(monkeypatch, 64, ranks=8)
    assert cores_of_this_rank() == 8
    machine(monkeypatch, 64, bound=12, ranks=8)  # SLURM --cpus-per-task=12
    assert cores_of_this_rank() == 12
    machine(monkeypatch, 4, ranks=8)
    assert cores_of_this_rank() == 1


def test_auto_leaves_one_core_to_feed_the_gpu_and_few_beside_a_cpu_model(monkeypatch):
    machine(monkeypatch, 64, ranks=4)
    assert training_workers("auto", CUDA) == 15
    assert training_workers("auto", CPU) == 4
    machine(monkeypatch, 2)
    assert training_workers("auto", CUDA) == 1 and training_workers("auto", CPU) == 2
    assert training_workers(8, CPU) == 2 and training_workers(0, CUDA) == 0


def test_cpu_inference_workers_get_only_the_cores_the_model_leaves(monkeypatch):
    machine(monkeypatch, 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert inference_workers(8, CPU) == 3 and inference_workers(2, CPU) == 2
    assert inference_workers("auto", CPU) == 3
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert inference_workers(8, CPU) == 0 and inference_workers("auto", CPU) == 0
    assert inference_workers("auto", CUDA) == 3  # beside a GPU every worker helps


def test_a_loader_worker_uses_one_thread():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        configure_worker(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


class KeyEcho(Dataset):
    """Item (epoch, i) -> (epoch, i, the worker's process id)."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, int, int]:
        return key[0], key[1], os.getpid()


def test_persistent_workers_take_each_epoch_from_the_sampler():
    sampler = EpochSampler(6, seed=3)
    loader = clip_loader(KeyEcho(), sampler, batch_size=3, workers=2, pin_memory=False)
    seen = {}
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch)
        items = [row for batch in loader for row in zip(*[column.tolist() for column in batch])]
        assert {e for e, _, _ in items} == {epoch}
        assert sorted(i for _, i, _ in items) == list(range(6))
        seen[epoch] = [i for _, i, _ in items], {pid for _, _, pid in items}
    assert seen[0][0] != seen[1][0]  # a new order each epoch
    assert seen[0][1] == seen[1][1] == seen[2][1]  # the same worker processes
    assert loader.prefetch_factor == loading.PREFETCH_BATCHES


def test_stopped_workers_are_gone_at_once_and_the_loader_starts_new_ones() -> None:
    sampler = EpochSampler(6, seed=3)
    loader = clip_loader(KeyEcho(), sampler, batch_size=3, workers=2, pin_memory=False)
    stop_workers(loader)  # never iterated: nothing to stop
    first = {pid for batch in loader for pid in batch[2].tolist()}
    workers = loader._iterator._workers
    assert all(worker.is_alive() for worker in workers)  # persistent between epochs
    stop_workers(loader)
    assert not any(worker.is_alive() for worker in workers)  # joined, not left to the collector
    assert not any(child in workers for child in multiprocessing.active_children())
    again = {pid for batch in loader for pid in batch[2].tolist()}
    assert again and again.isdisjoint(first)
    stop_workers(loader)
    stop_workers(None)


def test_uint8_parts_are_joined_in_order_and_normalised_on_the_device():
    compute = Compute(CPU, "off", torch.channels_last_3d, Distribution())
    first = torch.full((2, 3, 2, 4, 4), 255, dtype=torch.uint8)
    second = torch.zeros((1, 3, 2, 4, 4), dtype=torch.uint8)
    clips = compute.prepare_clips(first, second)
    assert clips.shape == (3, 3, 2, 4, 4) and clips.dtype == torch.float32
    assert clips.is_contiguous(memory_format=torch.channels_last_3d)
    white = ((1 - IMAGENET_MEAN) / IMAGENET_STD).view(3)
    black = (-IMAGENET_MEAN / IMAGENET_STD).view(3)
    assert torch.allclose(clips[:2, :, 0, 0, 0], white.expand(2, 3), atol=1e-6)
    assert torch.allclose(clips[2, :, 1, 3, 3], black, atol=1e-6)
    assert first.dtype == torch.uint8 and int(first[0, 0, 0, 0, 0]) == 255  # inputs untouched


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (3, 3), ("3", 3)])
def test_loader_workers_take_a_number_or_auto(value, expected):
    from stages.runtime.settings import coerce_value

    meta = {"auto": True, "minimum": 0}
    assert coerce_value("pretrain.workers", value, int | str, meta) == expected


@pytest.mark.parametrize("value", ["many", "²", -1, 2.5])
def test_loader_workers_refuse_other_words_with_one_line(value):
    from stages.runtime.errors import ConfigError
    from stages.runtime.settings import coerce_value

    with pytest.raises(ConfigError, match="pretrain.workers"):
        coerce_value("pretrain.workers", value, int | str, {"auto": True, "minimum": 0})


def test_item_keys_carry_the_epoch():
    keys = list(EpochSampler(5, seed=1))
    assert all(epoch == 0 for epoch, _ in keys)
    sampler = EpochSampler(5, seed=1, rank=1, world=2)
    sampler.set_epoch(4)
    assert [epoch for epoch, _ in sampler] == [4, 4]
    assert np.isin([i for _, i in sampler], range(5)).all()


class ClipItems(Dataset):
    """Item i -> ({"clip": (3, 2, 4, 4) uint8 view of channels-last frames, "index": i}, i)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, key) -> tuple[dict, int]:
        index = key[1] if isinstance(key, tuple) else key
        frames = torch.arange(2 * 4 * 4 * 3, dtype=torch.uint8).view(2, 4, 4, 3) + index
        return {"clip": frames.permute(3, 0, 1, 2), "index": index}, index


@pytest.mark.parametrize("workers", [0, 1])
def test_clips_are_batched_channels_last_with_their_values(workers):
    loader = clip_loader(ClipItems(), None, batch_size=4, workers=workers, pin_memory=False)
    (batch, indices), = list(loader)
    clips = batch["clip"]
    assert clips.shape == (4, 3, 2, 4, 4) and clips.dtype == torch.uint8
    assert clips.is_contiguous(memory_format=torch.channels_last_3d)
    expected = torch.stack([ClipItems()[i][0]["clip"] for i in range(4)])
    assert torch.equal(clips, expected)
    assert batch["index"].tolist() == indices.tolist() == [0, 1, 2, 3]
