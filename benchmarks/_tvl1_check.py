"""TV-L1 (stages/flow/tvl1.py) pairs/s on a device, and how far its flow is from the CPU's.

Frames: a smooth random texture under a smooth random motion (up to 3 px), which takes TV-L1
about as many steps as the real clips (591 a pair at 170x128 on CPU, real clips 572).
benchmarks/bench_tvl1.py measures the CPU against OpenCV; this is the GPU check's part.
"""

from __future__ import annotations

import time

import torch

from benchmarks._common import median

# (height, width) and batch sizes timed: on CUDA the paper's 320x240 and short side 128; on
# the CPU one small size and batch, once (a smoke run: seconds, not minutes, on two cores).
CUDA_SIZES, CUDA_BATCHES = ((240, 320), (128, 170)), (1, 4, 16, 64)
CPU_SIZES, CPU_BATCHES = ((48, 64),), (4,)


def frame_pairs(count: int, height: int, width: int) -> torch.Tensor:
    """(count, 2, height, width) uint8: a texture and the same texture moved."""
    generator = torch.Generator().manual_seed(count * height)
    smooth = torch.nn.AvgPool2d(9, 1, 4, count_include_pad=False)
    texture = smooth(smooth(torch.rand(count, 1, height, width, generator=generator)))
    motion = smooth(smooth(torch.randn(count, 2, height, width, generator=generator)))
    motion = 3 * motion / motion.abs().amax((1, 2, 3), keepdim=True)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width),
                            indexing="ij")
    grid = torch.stack([xs - motion[:, 0] * 2 / (width - 1),
                        ys - motion[:, 1] * 2 / (height - 1)], -1)
    moved = torch.nn.functional.grid_sample(texture, grid, padding_mode="border",
                                            align_corners=True)
    frames = torch.cat([texture, moved], 1)
    frames = (frames - frames.amin()) / (frames.amax() - frames.amin()) * 255
    return frames.round().to(torch.uint8)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pairs_per_second(device: torch.device, height: int, width: int, batch: int,
                     repeats: int) -> tuple[int, float]:
    """(pairs timed, median pairs/s) of TV-L1 on `device` in batches of `batch`."""
    from stages.flow.tvl1 import tvl1_flow

    pairs = frame_pairs(max(batch, 4), height, width).to(device)
    tvl1_flow(pairs[:batch, 0], pairs[:batch, 1])  # warm-up
    rates = []
    for _ in range(repeats):
        synchronise(device)
        started = time.perf_counter()
        for chunk in pairs.split(batch):
            tvl1_flow(chunk[:, 0], chunk[:, 1])
        synchronise(device)
        rates.append(len(pairs) / (time.perf_counter() - started))
    return len(pairs), median(rates)


def difference_from_cpu(device: torch.device) -> dict[str, float]:
    """Max and mean end-point distance (px) of `device`'s flow from the CPU's, and the share
    of pixels more than 0.1 px apart (%), for 4 pairs at 170x128."""
    from stages.flow.tvl1 import tvl1_flow

    pairs = frame_pairs(4, 128, 170)
    here = tvl1_flow(pairs[:, 0].to(device), pairs[:, 1].to(device)).cpu()
    distance = (here - tvl1_flow(pairs[:, 0], pairs[:, 1])).norm(dim=1)
    return {"max_px": float(distance.max()), "mean_px": float(distance.mean()),
            "over_0_1_px_percent": float(100 * (distance > 0.1).float().mean())}


def tvl1_check(device: torch.device, repeats: int) -> dict[str, object]:
    """Pairs/s for each size and batch ("rates": frames, batch, pairs, pairs_per_second) and,
    off the CPU, the difference from the CPU's flow ("difference_from_cpu")."""
    on_cpu = device.type == "cpu"
    rates = []
    for height, width in CPU_SIZES if on_cpu else CUDA_SIZES:
        for batch in CPU_BATCHES if on_cpu else CUDA_BATCHES:
            count, rate = pairs_per_second(device, height, width, batch, 1 if on_cpu else repeats)
            rates.append({"frames": f"{width}x{height}", "batch": batch, "pairs": count,
                          "pairs_per_second": rate})
    found: dict[str, object] = {"rates": rates}
    if not on_cpu:
        found["difference_from_cpu"] = difference_from_cpu(device)
    return found
