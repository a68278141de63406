"""One process or many: torchrun's environment turns on DDP; without it everything is local.

gloo serves CPU runs (and the tests), NCCL serves CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from stages.runtime.context import launch_position
from stages.runtime.errors import ConfigError


@dataclass(frozen=True)
class Distribution:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collective tensors live: cuda for NCCL, cpu for gloo

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one process that writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether the job has more than one process (DDP is on)."""
        return self.world > 1


def start_distribution(device_kind: str, timeout: timedelta = timedelta(minutes=60)
                       ) -> Distribution:
    """Join the process group torchrun describes (RANK, WORLD_SIZE); a no-op otherwise.

    `timeout` bounds every collective: it must cover the longest stretch one rank works alone
    (a clustering round on rank 0), which NCCL's default of 10 minutes does not at Kinetics
    size."""
    world = launch_position()[1]
    if world <= 1:
        return Distribution()
    local_rank = local_position()
    device = "cpu"
    if device_kind == "cuda":
        index = local_gpu_index(local_rank, torch.cuda.device_count())
        torch.cuda.set_device(index)
        device = f"cuda:{index}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo", timeout=timeout)
    return Distribution(dist.get_rank(), dist.get_world_size(), local_rank, device)


def local_position() -> int:
    """This process's LOCAL_RANK under torchrun (0 without it)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_gpu_index(local_rank: int, visible: int) -> int:
    """The CUDA device of the process with `local_rank` on a node where it sees `visible` GPUs:
    its own LOCAL_RANK-th, or device 0 where a launcher gives each process one GPU of its own
    (SLURM's --gpus-per-task=1: every process sees one device, LOCAL_RANK counts on)."""
    if local_rank < visible:
        return local_rank
    if visible == 1:
        return 0
    raise ConfigError(f"this process has LOCAL_RANK {local_rank} but sees {visible} CUDA "
                      "devices: start at most as many processes a node as it has GPUs "
                      "(torchrun --nproc-per-node), or check CUDA_VISIBLE_DEVICES")


def stop_distribution(distribution: Distribution) -> None:
    """Destroy the process group of a multi-process job; a no-op otherwise."""
    if distribution.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(distribution: Distribution) -> None:
    """Wait for every rank; a no-op for a single process."""
    if distribution.active:
        dist.barrier()


def gather_rows(rows: torch.Tensor, positions: torch.Tensor, total: int,
                distribution: Distribution) -> torch.Tensor:
    """Assemble a (total, D) matrix from every rank's (n_r, D) rows at their positions.

    A rank with no rows may pass them with any width (it cannot know D): every rank's
    buffers take the widest rank's D, so the collectives see equal shapes on every rank."""
    if not distribution.active:
        result = torch.zeros(total, rows.shape[1], dtype=rows.dtype)
        result[positions] = rows
        return result
    device = distribution.device
    sizes = [torch.zeros(2, dtype=torch.long, device=device) for _ in range(distribution.world)]
    dist.all_gather(sizes, torch.tensor([len(rows), rows.shape[1] if len(rows) else 0],
                                        device=device))
    longest = int(max(size[0].item() for size in sizes))
    width = int(max(size[1].item() for size in sizes))
    padded_rows = torch.zeros(longest, width, dtype=rows.dtype, device=device)
    padded_rows[:len(rows)] = rows.to(device)
    padded_positions = torch.full((longest,), -1, dtype=torch.long, device=device)
    padded_positions[:len(positions)] = positions.to(device)
    all_rows = [torch.zeros_like(padded_rows) for _ in range(distribution.world)]
    all_positions = [torch.zeros_like(padded_positions) for _ in range(distribution.world)]
    dist.all_gather(all_rows, padded_rows)
    dist.all_gather(all_positions, padded_positions)
    result = torch.zeros(total, width, dtype=rows.dtype)
    for block, where in zip(all_rows, all_positions):
        block, where = block.cpu(), where.cpu()
        valid = where >= 0
        result[where[valid]] = block[valid]
    return result


def broadcast_labels(labels: np.ndarray | None, size: int,
                     distribution: Distribution) -> np.ndarray:
    """Rank 0's (size,) int64 labels on every rank."""
    if not distribution.active:
        assert labels is not None
        return labels
    buffer = torch.zeros(size, dtype=torch.int64)
    if distribution.is_main and labels is not None:
        buffer = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    buffer = buffer.to(distribution.device)
    dist.broadcast(buffer, src=0)
    return buffer.cpu().numpy()


def all_agree(value: str, distribution: Distribution) -> bool:
    """True when every rank passes the same string (a digest, for example)."""
    if not distribution.active:
        return True
    values: list[str | None] = [None] * distribution.world
    dist.all_gather_object(values, value)
    return all(v == values[0] for v in values)


def sum_across(values: torch.Tensor, distribution: Distribution) -> torch.Tensor:
    """Element-wise sum of a small CPU tensor over ranks."""
    if distribution.active:
        values = values.to(distribution.device).clone()
        dist.all_reduce(values)
        values = values.cpu()
    return values
