"""GPU check: the paper path on one GPU in a few minutes, and the training step against a bare
loop of the same model.

Makes a small synthetic dataset, runs extract-frames, compute-flow, pretrain (two epochs with
a clustering round), retrieve, linear-probe and finetune as whole commands on the chosen
device, then times SLIC's training step (from pretrain's metrics: the real loader, mining and
losses included) against a bare forward/backward/SGD loop of the same encoder on clips that
already sit on the device, and reports the peak GPU memory.

    python benchmarks/gpu_check.py                  # CUDA: r3d_18, 16x112x112, bf16 (< 8 min)
    python benchmarks/gpu_check.py --device cpu     # the same chain on CPU, smoke-sized model
    python benchmarks/gpu_check.py --tvl1-only      # only TV-L1's pairs/s and CPU difference

`--preset gpu|smoke` chooses the sizes (default: gpu on CUDA, smoke on CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    machine_info,
    median,
    print_machine,
    run_slic,
    table,
)
from stages.models.encoder import Encoder  # noqa: E402
from stages.runtime.sections import ComputeConfig  # noqa: E402
from stages.training.compute import Compute, start_compute  # noqa: E402

PRESETS = {
    "gpu": {"arch": "r3d_18", "clip_length": 16, "crop_size": 112, "batch_size": 32,
            "groups_per_class": 12, "short_side": 128, "epochs": 2},
    "smoke": {"arch": "r3d_tiny", "clip_length": 4, "crop_size": 32, "batch_size": 8,
              "groups_per_class": 3, "short_side": 48, "epochs": 2},
}


def prepare(folder: Path, preset: dict, workers: int) -> tuple[list[str], dict[str, float]]:
    """The dataset, frames and flow; returns the common CLI arguments and each part's wall."""
    data, workspace = folder / "data", folder / "ws"
    common = ["--dataset", "synthetic", "--workspace", str(workspace), "--quiet", "--json"]
    walls = {}
    walls["make-dataset"], _ = run_slic(["make-dataset", "synthetic", "--out", str(data),
                                         "--set", f"make_dataset.groups_per_class="
                                         f"{preset['groups_per_class']}", "-q", "--json"])
    walls["extract-frames"], _ = run_slic(["extract-frames", "--root", str(data), *common,
                                           "--workers", str(workers), "--set",
                                           f"extract_frames.short_side={preset['short_side']}"])
    walls["compute-flow"], _ = run_slic(["compute-flow", *common, "--workers", str(workers)])
    return common, walls


def learning_stages(common: list[str], preset: dict, device: str, amp: str, workers: int
                    ) -> tuple[dict[str, float], dict[str, dict], Path]:
    """pretrain, retrieve, linear-probe and finetune as whole commands on `device`."""
    compute = ["--device", device, "--amp", amp, "--workers", str(workers)]
    clips = [f"--set=pretrain.clip_length={preset['clip_length']}",
             f"--set=pretrain.crop_size={preset['crop_size']}"]
    walls, summaries = {}, {}
    walls["pretrain"], summaries["pretrain"] = run_slic(
        ["pretrain", *common, *compute, *clips, "--arch", preset["arch"], "--epochs",
         str(preset["epochs"]), "--batch-size", str(preset["batch_size"]), "--run-name",
         "gpu-check", "--force", "--set=pretrain.eval_every=0"])
    run = Path(summaries["pretrain"]["run_folder"])
    evaluation = ["--run", str(run), *common, *compute, "--force"]
    walls["retrieve"], summaries["retrieve"] = run_slic(
        ["retrieve", *evaluation, "--k", "1,5", "--clips", "2"])
    walls["linear-probe"], summaries["linear-probe"] = run_slic(
        ["linear-probe", *evaluation, "--epochs", "1", "--windows", "2", "--crops", "1",
         f"--set=linear_probe.batch_size={preset['batch_size']}"])
    walls["finetune"], summaries["finetune"] = run_slic(
        ["finetune", *evaluation, "--epochs", "1", "--windows", "2", "--crops", "1",
         "--batch-size", str(preset["batch_size"])])
    return walls, summaries, run


def bare_loop(preset: dict, compute: Compute, steps: int, repeats: int) -> tuple[float, float]:
    """Clips/s of forward + backward + SGD on a (3B, 3, T, S, S) batch already on the device
    (SLIC forwards anchors, positives and augmented anchors together), and the peak memory
    in GiB (CUDA only; 0 on CPU)."""
    torch.manual_seed(0)
    encoder = Encoder(preset["arch"]).to(compute.device, memory_format=compute.memory_format)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1, momentum=0.5)
    scaler = compute.grad_scaler()
    size, length = preset["crop_size"], preset["clip_length"]
    batch = compute.to_device(torch.randn(3 * preset["batch_size"], 3, length, size, size))

    def step() -> None:
        with compute.autocast():
            loss = encoder(batch).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def synchronise() -> None:
        if compute.device.type == "cuda":
            torch.cuda.synchronize(compute.device)

    for _ in range(3):
        step()
    synchronise()
    if compute.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(compute.device)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronise()
        rates.append(len(batch) * steps / (time.perf_counter() - started))
    peak = (torch.cuda.max_memory_allocated(compute.device) / 2**30
            if compute.device.type == "cuda" else 0.0)
    return median(rates), peak


def slic_step_rate(run: Path) -> tuple[float, float | None]:
    """Clips/s and peak GPU GiB of pretrain's last epoch (its first includes warm-up)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "clips_per_second" in r]
    return epochs[-1]["clips_per_second"], epochs[-1].get("gpu_peak_gib")


def tvl1_check(device: torch.device, repeats: int) -> None:
    """TV-L1 (stages/flow/tvl1.py) pairs/s on `device` at 320x240 and 170x128 (short side 128)
    for batches of 1, 4, 16, 64, and the largest difference from the CPU's flow for one batch
    of 4. Frames: a smooth random texture under a smooth random motion (up to 3 px), which
    takes TV-L1 about as many steps as the real clips (591 a pair at 170x128 on CPU, real clips
    572). On CPU only a smoke run (170x128, batches 1 and 4, once; 15 s with one thread):
    benchmarks/bench_tvl1.py measures the CPU against OpenCV."""
    from stages.flow.tvl1 import tvl1_flow

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def frame_pairs(count: int, height: int, width: int) -> torch.Tensor:
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

    on_cpu = device.type == "cpu"
    sizes = [(128, 170)] if on_cpu else [(240, 320), (128, 170)]
    batches = (1, 4) if on_cpu else (1, 4, 16, 64)
    rows = []
    for height, width in sizes:
        for batch in batches:
            pairs = frame_pairs(max(batch, 4), height, width).to(device)
            tvl1_flow(pairs[:batch, 0], pairs[:batch, 1])  # warm-up
            rates = []
            for _ in range(1 if on_cpu else repeats):
                synchronise()
                started = time.perf_counter()
                for chunk in pairs.split(batch):
                    tvl1_flow(chunk[:, 0], chunk[:, 1])
                synchronise()
                rates.append(len(pairs) / (time.perf_counter() - started))
            rows.append([f"{width}x{height}", batch, len(pairs), f"{median(rates):.2f}"])
    print(table(["TV-L1 frames", "batch", "pairs timed", f"pairs/s on {device}"], rows))
    if not on_cpu:
        pairs = frame_pairs(4, 128, 170)
        here = tvl1_flow(pairs[:, 0].to(device), pairs[:, 1].to(device)).cpu()
        reference = tvl1_flow(pairs[:, 0], pairs[:, 1])
        difference = (here - reference).norm(dim=1)
        print(f"TV-L1 {device} vs CPU, 4 pairs 170x128: max |difference| "
              f"{difference.max():.4f} px, mean {difference.mean():.6f} px, "
              f"pixels > 0.1 px apart {100 * (difference > 0.1).float().mean():.3f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--amp", default="bf16", choices=("bf16", "fp16", "off"))
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="sizes: gpu (r3d_18, 16x112x112) or smoke (r3d_tiny, 4x32x32); "
                             "default gpu on CUDA, smoke on CPU")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--bare-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None,
                        help="work folder (default: a temporary one, removed at the end)")
    parser.add_argument("--tvl1-only", action="store_true",
                        help="only the TV-L1 section (pairs/s, difference from the CPU)")
    args = parser.parse_args()
    compute = start_compute(ComputeConfig(device=args.device, amp=args.amp))
    preset_name = args.preset or ("gpu" if compute.device.type == "cuda" else "smoke")
    preset = PRESETS[preset_name]
    info = machine_info()
    if compute.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(compute.device)
    info["torch"] = torch.__version__
    print_machine(info)
    if args.tvl1_only:
        tvl1_check(compute.device, args.repeats)
        return
    print(f"preset {preset_name}: {preset}; device {compute.device}, amp {compute.amp}, "
          f"channels_last {compute.memory_format is torch.channels_last_3d}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        common, walls = prepare(folder, preset, args.workers)
        stage_walls, summaries, run = learning_stages(common, preset, args.device, args.amp,
                                                      args.workers)
        walls.update(stage_walls)
        slic_rate, slic_peak = slic_step_rate(run)
    bare_rate, bare_peak = bare_loop(preset, compute, args.bare_steps, args.repeats)
    print(table(["command (whole, as the user waits)", "wall s", "figure"], [
        ["make-dataset", f"{walls['make-dataset']:.1f}", ""],
        ["extract-frames", f"{walls['extract-frames']:.1f}", ""],
        ["compute-flow", f"{walls['compute-flow']:.1f}", ""],
        ["pretrain", f"{walls['pretrain']:.1f}",
         f"loss {summaries['pretrain'].get('loss')}, clusters "
         f"{summaries['pretrain'].get('num_clusters')}"],
        ["retrieve", f"{walls['retrieve']:.1f}", f"R@1 {summaries['retrieve']['r1']:.3f}"],
        ["linear-probe", f"{walls['linear-probe']:.1f}",
         f"top-1 {summaries['linear-probe']['top1']:.3f}"],
        ["finetune", f"{walls['finetune']:.1f}", f"top-1 {summaries['finetune']['top1']:.3f}"],
    ]))
    print()
    print(table(["training step (kernel level)", "clips/s", "peak GPU GiB"], [
        ["slic pretrain, last epoch (loader, mining, losses)", f"{slic_rate:.1f}",
         "-" if slic_peak is None else f"{slic_peak:.2f}"],
        [f"bare loop, batch on the device (median of {args.repeats})", f"{bare_rate:.1f}",
         f"{bare_peak:.2f}" if compute.device.type == "cuda" else "-"],
        ["ratio slic / bare", f"{slic_rate / bare_rate:.2f}x", ""],
    ]))
    print()
    tvl1_check(compute.device, args.repeats)


if __name__ == "__main__":
    main()
