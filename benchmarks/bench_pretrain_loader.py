"""Pretraining's data path: does the loader keep up, and how does it compare to the official one?

Three measurements on real videos (../shared/data/real-clips by default), each a median over
--runs repetitions, baselines measured in the same run:

1. loader vs memory: steps/s of a SLIC training step fed by the real DataLoader (2 workers,
   anchor + positive + augmented anchor, flow views included) against the same step fed by
   batches already in memory; for r3d_tiny and r3d_18, 16 x 112 x 112 clips.
2. slic vs official data path: clips/s of making the same clips (same videos, same windows,
   same augmentation) from frames.h5 + flow.h5, against one JPEG file per frame decoded with
   PIL and transformed frame by frame with PIL (the official code's path), one process.
3. step overhead: steps/s of slic's step (mining, statistics) against a bare loop of the same
   model, a plain triplet loss and SGD on in-memory tensors.
4. `--cpu-ms`: only the CPU cost of the pretrain loader itself (benchmarks/_loader_cost.py):
   worker CPU-ms per training clip at `--crop`, median over --runs epochs; prints
   `cpu_ms_per_clip=X` last (issue 23's target: X <= 3.0 at 16x128).

    python benchmarks/bench_pretrain_loader.py [--input DIR] [--runs 3]
    python benchmarks/bench_pretrain_loader.py --cpu-ms --crop 128 [--work DIR]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader
from torchvision.transforms import v2 as T

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    default_real_clips,
    machine_info,
    median,
    prepare_folder_input,
    print_machine,
    slic_command,
    table,
)
from benchmarks._loader_cost import measure_loader  # noqa: E402
from stages.clips.augment import AugmentSettings, augment_clip, draw_augmentation  # noqa: E402
from stages.clips.store import ClipStore  # noqa: E402
from stages.clips.triplets import EpochSampler, TripletClips  # noqa: E402
from stages.models.encoder import Encoder  # noqa: E402
from stages.pretrain_config import PretrainConfig  # noqa: E402
from stages.slic_training import triplet_settings  # noqa: E402
from stages.training.compute import Compute  # noqa: E402
from stages.training.loading import configure_worker  # noqa: E402
from stages.training.slic_step import LossSettings, slic_step, step_generator  # noqa: E402

CPU = Compute(torch.device("cpu"), "off", torch.contiguous_format)


def prepare(input_dir: Path, work: Path) -> tuple[Path, Path]:
    """frames.h5 (short side 128) and flow.h5 of the input videos, made with slic (kept from
    an earlier run in the same `work` folder)."""
    made = work / "ws" / "bench" / "frames.h5", work / "ws" / "bench" / "flow.h5"
    if all(path.is_file() for path in made):
        return made
    videos = prepare_folder_input(input_dir, work / "videos")
    common = ["--workspace", str(work / "ws"), "--name", "bench", "--quiet"]
    subprocess.run(slic_command() + ["extract-frames", "--dataset", "folder", "--root",
                                     str(videos), *common], check=True)
    subprocess.run(slic_command() + ["compute-flow", *common], check=True)
    return work / "ws" / "bench" / "frames.h5", work / "ws" / "bench" / "flow.h5"


def triplet_data(store: ClipStore, size: int) -> TripletClips:
    settings = triplet_settings(PretrainConfig(clip_length=16, p_beta=0.5, crop_size=size))
    data = TripletClips(store, np.arange(len(store.table)), settings, seed=0)
    data.set_clusters(np.arange(len(store.table)) % 4)
    return data


def timed_steps(encoder, optimizer, batches, steps: int, step_function) -> float:
    """Steps per second over `steps` steps after one warm-up step."""
    iterator = iter(batches)
    step_function(encoder, optimizer, next(iterator))
    started = time.perf_counter()
    for _ in range(steps):
        step_function(encoder, optimizer, next(iterator))
    return steps / (time.perf_counter() - started)


def slic_training_step(encoder, optimizer, batch) -> None:
    labels = np.zeros(int(batch["index"].max()) + 1000, dtype=np.int64)
    outcome = slic_step(encoder, batch, labels, LossSettings(), [step_generator(0, 0, 0, 0)], CPU)
    optimizer.zero_grad()
    outcome.loss.backward()
    optimizer.step()


def bare_training_step(encoder, optimizer, batch) -> None:
    size = len(batch["index"])
    embeddings = encoder(CPU.prepare_clips(batch["anchor"], batch["positive"],
                                           batch["augmented"]))
    anchor, positive, augmented = embeddings.split(size)
    distance = torch.nn.TripletMarginWithDistanceLoss(
        distance_function=lambda a, b: 1 - torch.nn.functional.cosine_similarity(a, b),
        margin=0.2)
    loss = distance(anchor, positive, positive.roll(1, 0)) + distance(anchor, augmented,
                                                                      positive)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def loader_vs_memory(store: ClipStore, arch: str, batch: int, steps: int, runs: int
                     ) -> tuple[list[float], list[float]]:
    data = triplet_data(store, 112)
    torch.manual_seed(0)
    encoder = Encoder(arch)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.01, momentum=0.5)
    memory_batches = [next(iter(DataLoader(data, batch_size=batch, shuffle=True)))
                      for _ in range(3)]
    loaded, in_memory = [], []
    for _ in range(runs):
        sampler = EpochSampler(len(data), seed=0)
        loader = DataLoader(data, batch_size=batch, sampler=sampler, num_workers=2,
                            drop_last=True, worker_init_fn=configure_worker,
                            persistent_workers=True)
        endless = (b for _ in itertools.count() for b in loader)
        loaded.append(timed_steps(encoder, optimizer, endless, steps, slic_training_step))
        in_memory.append(timed_steps(encoder, optimizer, itertools.cycle(memory_batches), steps,
                                     slic_training_step))
    return loaded, in_memory


def export_official_layout(store: ClipStore, folder: Path) -> None:
    """One JPEG per frame (image_%05d.jpg) and per u flow field, the official layout; the
    bytes are the very JPEGs frames.h5 holds, so both sides decode the same images."""
    import h5py

    from stages.io.artifacts import read_encoded_images

    with h5py.File(store.frames_path) as frames, h5py.File(store.flow_path) as flow:
        for video in range(len(store.table)):
            target = folder / "rgb" / str(video)
            target.mkdir(parents=True)
            count = store.frame_count(video)
            first = int(store.frames_layout.first_image[video])
            for index, data in enumerate(read_encoded_images(frames, "images", first, count)):
                (target / f"image_{index + 1:05d}.jpg").write_bytes(data.tobytes())
            row = int(store.flow_rows[video])
            flows = read_encoded_images(flow, "flow_u", int(store.flow_layout.first_image[row]),
                                        int(store.flow_layout.num_images[row]))
            target = folder / "flow_u" / str(video)
            target.mkdir(parents=True)
            for index, data in enumerate(flows):
                (target / f"frame{index + 1:06d}.jpg").write_bytes(data.tobytes())


JITTER_OPERATIONS = (T.functional.adjust_brightness, T.functional.adjust_contrast,
                     T.functional.adjust_saturation, T.functional.adjust_hue)


def official_clip(folder: Path, video: int, frames: np.ndarray, flow: bool, size: int,
                  rng: np.random.Generator) -> torch.Tensor:
    """The official path: PIL opens each file; crop/flip/jitter/gray/blur frame by frame."""
    images = []
    for index in frames.tolist():
        path = (folder / "flow_u" / str(video) / f"frame{index + 1:06d}.jpg" if flow else
                folder / "rgb" / str(video) / f"image_{index + 1:05d}.jpg")
        with Image.open(path) as image:
            images.append(image.convert("L" if flow else "RGB"))
    width, height = images[0].size
    augmentation = draw_augmentation(height, width, AugmentSettings(size), rng)
    top, left, h, w = augmentation.box
    jitter = T.ColorJitter(0.5, 0.5, 0.5, 0.5)
    params = T.ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation,
                                      jitter.hue) if augmentation.jitter else None
    tensors = []
    for image in images:
        image = image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
        if augmentation.flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if params is not None:
            order, *factors = params
            for op in order.tolist():
                image = JITTER_OPERATIONS[op](image, factors[op])
        if augmentation.grayscale:
            image = image.convert("L").convert("RGB" if not flow else "L")
        if augmentation.blur:
            image = image.filter(ImageFilter.GaussianBlur(2))
        tensor = T.functional.pil_to_tensor(image).float().div(255)
        tensors.append(tensor.expand(3, -1, -1) if tensor.shape[0] == 1 else tensor)
    clip = torch.stack(tensors, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)
    return (clip - mean) / std


def slic_clip(store: ClipStore, video: int, frames: np.ndarray, flow: bool, size: int,
              rng: np.random.Generator) -> torch.Tensor:
    pixels = store.flow(video, frames, "u") if flow else store.rgb(video, frames)
    augmentation = draw_augmentation(pixels.shape[1], pixels.shape[2], AugmentSettings(size),
                                     rng)
    return augment_clip(pixels, augmentation, size)


def clip_plan(store: ClipStore, count: int) -> list[tuple[int, np.ndarray, bool]]:
    rng = np.random.default_rng(0)
    plan = []
    for _ in range(count):
        video = int(rng.integers(len(store.table)))
        frames_total = store.frame_count(video)
        start = int(rng.integers(0, max(frames_total - 16, 0) + 1))
        frames = (start + np.arange(16)) % frames_total
        plan.append((video, frames, bool(rng.random() < 0.25)))
    return plan


def clips_per_second(make, plan, size: int) -> float:
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    for video, frames, flow in plan:
        make(video, frames, flow, size, rng)
    return len(plan) / (time.perf_counter() - started)


def official_comparison(store: ClipStore, work: Path, args: argparse.Namespace) -> None:
    export_official_layout(store, work / "official")
    plan = clip_plan(store, args.clips)
    official = lambda v, f, fl, s, r: official_clip(work / "official", v, f, fl, s, r)  # noqa: E731
    ours = lambda v, f, fl, s, r: slic_clip(store, v, f, fl, s, r)  # noqa: E731
    rows = []
    for size in (112, 128):
        slic_rates, official_rates = [], []
        for _ in range(args.runs):
            official_rates.append(clips_per_second(official, plan, size))
            slic_rates.append(clips_per_second(ours, plan, size))
        rows.append([f"16x{size}x{size}", f"{median(official_rates):.1f}",
                     f"{median(slic_rates):.1f}",
                     f"{median(slic_rates) / median(official_rates):.2f}"])
    print("\nclips/s, one process (25% flow clips):")
    print(table(["clip", "official path", "slic", "ratio"], rows))


def loader_comparison(store: ClipStore, args: argparse.Namespace) -> None:
    rows = []
    for arch, batch, steps in (("r3d_tiny", 8, args.tiny_steps),
                               ("r3d_18", 4, args.r3d_steps)):
        loaded, in_memory = loader_vs_memory(store, arch, batch, steps, args.runs)
        rows.append([arch, batch, f"{median(in_memory):.3f}", f"{median(loaded):.3f}",
                     f"{median(loaded) / median(in_memory):.2f}"])
    print("\ntraining steps/s, 16x112x112, 2 loader workers:")
    print(table(["arch", "items/step", "in memory", "real loader", "ratio"], rows))


def step_comparison(store: ClipStore, args: argparse.Namespace) -> None:
    rows = []
    data = triplet_data(store, 112)
    for arch, batch, steps in (("r3d_tiny", 8, args.tiny_steps), ("r3d_18", 4, args.r3d_steps)):
        batches = [next(iter(DataLoader(data, batch_size=batch, shuffle=True)))
                   for _ in range(3)]
        torch.manual_seed(0)
        encoder = Encoder(arch)
        optimizer = torch.optim.SGD(encoder.parameters(), lr=0.01, momentum=0.5)
        bare, ours_rate = [], []
        for _ in range(args.runs):
            bare.append(timed_steps(encoder, optimizer, itertools.cycle(batches), steps,
                                    bare_training_step))
            ours_rate.append(timed_steps(encoder, optimizer, itertools.cycle(batches),
                                         steps, slic_training_step))
        rows.append([arch, batch, f"{median(bare):.3f}", f"{median(ours_rate):.3f}",
                     f"{median(ours_rate) / median(bare):.2f}"])
    print("\ntraining steps/s on in-memory batches, 16x112x112:")
    print(table(["arch", "items/step", "bare loop", "slic step", "ratio"], rows))


def loader_cpu_cost(store: ClipStore, args: argparse.Namespace) -> None:
    """Worker CPU-ms per training clip of the pretrain loader at 16 x crop; the median is
    printed last as cpu_ms_per_clip=X."""
    costs: dict[str, list[float]] = {"worker": [], "device": []}
    rates: dict[str, list[float]] = {"worker": [], "device": []}
    for _ in range(args.runs):  # the two placements alternate, so load affects both alike
        for colour_on in ("worker", "device"):
            measured = measure_loader(store, crop=args.crop, clip_length=16, batch_size=8,
                                      workers=args.workers, batches=args.batches,
                                      colour_on=colour_on)
            costs[colour_on].append(measured["cpu_ms_per_clip"])
            rates[colour_on].append(measured["clips_per_second"])
    print(f"\npretrain loader, 16x{args.crop}x{args.crop} clips, {args.workers} workers, "
          f"{args.batches} batches of 8 items (24 clips) a run, median of {args.runs}:")
    print(table(["colour operations on", "worker CPU-ms per clip (runs)",
                 "clips/s (loader alone)"],
                [[f"{place} ({'CPU default' if place == 'worker' else 'CUDA default'})",
                  f"{median(costs[place]):.2f} ({', '.join(f'{c:.2f}' for c in costs[place])})",
                  f"{median(rates[place]):.0f}"] for place in ("worker", "device")]))
    print(f"cpu_ms_per_clip={median(costs['device']):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=default_real_clips())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--tiny-steps", type=int, default=12)
    parser.add_argument("--r3d-steps", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["official", "loader", "step"],
                        choices=["official", "loader", "step"])
    parser.add_argument("--cpu-ms", action="store_true",
                        help="only the loader's worker CPU-ms per clip (printed last)")
    parser.add_argument("--crop", type=int, default=128, help="crop size for --cpu-ms")
    parser.add_argument("--workers", type=int, default=2, help="loader workers for --cpu-ms")
    parser.add_argument("--batches", type=int, default=40, help="batches a run for --cpu-ms")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep frames.h5 and flow.h5 here and reuse them (default: a "
                             "temporary folder)")
    args = parser.parse_args()
    info = machine_info()
    print_machine(info)
    work = args.work or Path(tempfile.mkdtemp(prefix="slic-bench-loader-"))
    try:
        frames, flow = prepare(args.input, work)
        store = ClipStore(frames, flow)
        print(f"{len(store.table)} videos, {int(store.frames_layout.num_images.sum())} frames")
        if args.cpu_ms:
            loader_cpu_cost(store, args)
            return

        if "official" in args.parts:
            official_comparison(store, work, args)
        torch.set_num_threads(2)
        if "loader" in args.parts:
            loader_comparison(store, args)
        if "step" in args.parts:
            step_comparison(store, args)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
