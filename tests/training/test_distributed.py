"""The collectives of a torchrun job, run for real: two processes on the gloo backend."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stages.runtime.errors import ConfigError
from stages.training.distributed import Distribution, gather_rows

pytestmark = pytest.mark.slow  # each test starts two Python processes that import torch


def _rank_main(rank: int, world: int, store: str, work: Callable[[Distribution, Path], object],
               folder: Path) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        result = work(Distribution(rank, world, rank, "cpu"), folder)
        torch.save(result, folder / f"rank{rank}.pt")
        # As `computing` does: no rank tears down while another still finishes its last
        # collective (that one aborts with SIGABRT, seen in CI).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(work: Callable[[Distribution, Path], object], folder: Path,
              world: int = 2) -> list[object]:
    """`work(distribution, folder)` on each of `world` gloo ranks; their results."""
    mp.spawn(_rank_main, args=(world, str(folder / "store"), work, folder), nprocs=world)
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in range(world)]


def _gather_with_an_empty_rank(distribution: Distribution, folder: Path) -> torch.Tensor:
    if distribution.rank == 0:
        rows, positions = torch.arange(12.0).view(4, 3), torch.tensor([3, 0, 4, 1])
    else:  # no rows: the width it can pass is a guess
        rows, positions = torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)
    return gather_rows(rows, positions, 5, distribution)


def test_a_rank_without_rows_gathers_like_the_others(tmp_path):
    expected = torch.zeros(5, 3)
    expected[[3, 0, 4, 1]] = torch.arange(12.0).view(4, 3)
    for gathered in run_ranks(_gather_with_an_empty_rank, tmp_path):
        assert torch.equal(gathered, expected)


def _begin_where_only_rank_0_sees_the_checkpoint(distribution: Distribution,
                                                 folder: Path) -> str:
    from stages.runtime.progress import SilentProgress
    from stages.training.compute import Compute
    from stages.training.schedule import build_schedule
    from stages.training.trainer import Trainer

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    own = folder / f"node{distribution.rank}"  # a run folder that only this rank sees
    own.mkdir()
    trainer = Trainer("pretrain", Compute(torch.device("cpu"), "off", torch.contiguous_format,
                                          distribution),
                      model, optimizer, build_schedule(optimizer, lambda step: 1.0), [0.1],
                      {"epochs": 3}, ("epochs",), own)
    if distribution.is_main:
        trainer.save(2)
    try:
        trainer.begin(True, False, [], SilentProgress())
    except ConfigError as error:
        return str(error)
    return "started"


def test_ranks_that_see_different_checkpoints_stop_together(tmp_path):
    messages = run_ranks(_begin_where_only_rank_0_sees_the_checkpoint, tmp_path)
    assert "rank 0 sees epoch 2" in messages[0] and "rank 1 sees none" in messages[1]
    for message in messages:
        assert "filesystem every node shares" in message


def _mine_on_this_rank(distribution: Distribution, folder: Path) -> list:
    from tests.training.mining_case import mined_triplets

    return mined_triplets(folder.parent / "frames.h5", distribution)


def test_one_and_two_gloo_processes_mine_the_same_triplets(tmp_path):
    from tests.helpers import write_tiny_frames

    write_tiny_frames(tmp_path / "frames.h5")
    results = {}
    for world in (1, 2):
        folder = tmp_path / f"world{world}"
        folder.mkdir()
        results[world] = run_ranks(_mine_on_this_rank, folder, world)
    (alone,), ranks = results[1], results[2]
    assert any(triplets for groups in alone for triplets in groups)
    for step, groups in enumerate(alone):
        assert [ranks[j % 2][step][j // 2] for j in range(len(groups))] == groups, step
