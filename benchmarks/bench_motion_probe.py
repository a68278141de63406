"""Can a small 3D CNN learn the synthetic motion classes at all? A supervised probe.

Trains r3d_tiny's architecture with a linear classifier (cross-entropy, Adam) on RGB clips of
the built-in synthetic videos, rendered in memory, with the pretraining augmentation, and
reports test accuracy on centre clips as it goes: once with the stem on the frames, once on
the differences of consecutive frames (r3d_tiny's stem). It bounds what any self-supervised
run of the same network can reach in the same number of steps.

    python benchmarks/bench_motion_probe.py [--steps 300] [--stems frames differences]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import machine_info, print_machine, table  # noqa: E402
from stages.clips.augment import (  # noqa: E402
    AugmentSettings,
    augment_clip,
    centre_crop_clip,
    draw_augmentation,
    normalise_clips,
)
from stages.clips.windows import centre_window, random_start, window  # noqa: E402
from stages.make_dataset import MakeDatasetConfig, render_video  # noqa: E402
from stages.models.backbones import VideoResNet3d  # noqa: E402

CLIP_LENGTH, STRIDE, CROP, SHORT_SIDE = 8, 3, 64, 128


def render(settings: MakeDatasetConfig) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Every video at short side 128 (as extract-frames stores it), labels, test mask."""
    videos, labels, test = [], [], []
    for label in range(settings.num_classes):
        for group in range(1, settings.groups_per_class + 1):
            for clip in range(1, settings.clips_per_group + 1):
                frames = render_video(settings, label, group, clip)
                height, width = frames.shape[1:3]
                scale = SHORT_SIDE / min(height, width)
                size = (round(width * scale), round(height * scale))
                videos.append(np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA)
                                        for f in frames]))
                labels.append(label)
                test.append(group <= settings.test_groups)
    return videos, np.array(labels), np.array(test)


def probe(videos: list[np.ndarray], labels: np.ndarray, test: np.ndarray,
          differences: bool, steps: int, seed: int) -> list[tuple[int, float, float]]:
    """(step, training loss, test accuracy) every 50 steps."""
    rng = np.random.default_rng(seed)
    augment = AugmentSettings(crop_size=CROP)
    train_videos, test_videos = np.flatnonzero(~test), np.flatnonzero(test)

    def training_clip(video: int) -> torch.Tensor:
        frames = videos[video]
        start = random_start(len(frames), CLIP_LENGTH, STRIDE, rng)
        clip = frames[window(start, CLIP_LENGTH, STRIDE, len(frames))]
        return normalise_clips(
            augment_clip(clip, draw_augmentation(*clip.shape[1:3], augment, rng), CROP))

    test_clips = normalise_clips(torch.stack([
        centre_crop_clip(videos[v][centre_window(len(videos[v]), CLIP_LENGTH, STRIDE)], CROP)
        for v in test_videos]))
    torch.manual_seed(seed)
    backbone = VideoResNet3d((16, 32, 64, 128), (1, 1, 1, 1), (3, 7, 7), differences)
    model = torch.nn.Sequential(backbone, torch.nn.Linear(128, int(labels.max()) + 1))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    curve = []
    for step in range(1, steps + 1):
        batch = rng.choice(train_videos, 32, replace=False)
        loss = torch.nn.functional.cross_entropy(
            model(torch.stack([training_clip(v) for v in batch])),
            torch.from_numpy(labels[batch]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0:
            model.eval()
            with torch.no_grad():
                predicted = model(test_clips).argmax(1).numpy()
            model.train()
            curve.append((step, float(loss), float((predicted == labels[test_videos]).mean())))
            print(f"{'differences' if differences else 'frames'} step {step}: loss "
                  f"{curve[-1][1]:.3f}, test accuracy {curve[-1][2]:.3f}", flush=True)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--stems", nargs="+", default=["frames", "differences"],
                        choices=["frames", "differences"])
    parser.add_argument("--groups", type=int, default=10, help="groups per class (2 test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print_machine(machine_info())
    torch.set_num_threads(2)
    settings = MakeDatasetConfig(groups_per_class=args.groups, seed=args.seed)
    started = time.perf_counter()
    videos, labels, test = render(settings)
    print(f"{len(videos)} videos ({int(test.sum())} test) rendered in "
          f"{time.perf_counter() - started:.0f} s; chance {1 / settings.num_classes:.3f}")
    rows = []
    for stem in args.stems:
        curve = probe(videos, labels, test, stem == "differences", args.steps, args.seed)
        rows.append([stem, *(f"{accuracy:.3f}" for _, _, accuracy in curve)])
    print(table(["stem input", *(f"step {step}" for step, _, _ in curve)], rows))


if __name__ == "__main__":
    main()
