"""Does SLIC learn on real videos? Instance retrieval, collapse and flow-view contrast.

The shared real clips (19 videos of UCF101, HMDB51, KTH and Kinetics, one to three a class)
are too few for class retrieval. What they can show is whether pretraining moves the
embeddings away from the random network's, and what the flow views look like:

- instance R@1: each video's first window (of two evenly spaced ones) looks for its own
  video's second window among every video's second window (chance 1/N), on the projection
  and on the pooled backbone feature;
- the mean pairwise cosine and the effective rank of the videos' centre clips (projection);
- the flow views' contrast: the standard deviation of the stored u images, in levels of 255,
  and the gain `pretrain.flow_contrast: clip` gives them.

Every variant is `slic pretrain` on the folder's train split (r3d_tiny, 8 frames at stride 3,
64 x 64 crops, batch 8) and is compared with a randomly initialised encoder of the same seed:

    python benchmarks/bench_real_videos.py [--videos ../shared/data/real-clips] \\
        [--epochs 60] [--seeds 0 1 2] [--variants stored clip] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    default_real_clips,
    logged_runs,
    machine_info,
    prepare_folder_input,
    print_machine,
    slic_command,
    spread,
    table,
)
from stages.clips.augment import stretch_gain  # noqa: E402
from stages.clips.fixed_windows import EvaluationClips  # noqa: E402
from stages.clips.store import ClipStore  # noqa: E402
from stages.clips.windows import centre_window  # noqa: E402
from stages.evaluation.collapse import embedding_health  # noqa: E402
from stages.evaluation.retrieval import nearest_neighbours  # noqa: E402
from stages.evaluation.sources import load_encoder  # noqa: E402
from stages.models.encoder import Encoder  # noqa: E402
from stages.runtime.progress import SilentProgress  # noqa: E402
from stages.training.compute import Compute  # noqa: E402
from stages.training.embedding import embed_clips  # noqa: E402

CPU = Compute(torch.device("cpu"), "off", torch.contiguous_format)
BASE = {"arch": "r3d_tiny", "clip_length": 8, "stride": 3, "crop_size": 64, "batch_size": 8,
        "cluster_every": 5, "cluster_warmup_epochs": 10, "workers": 2}
VARIANTS = {
    "stored": {},  # the official flow view: u as compute-flow stored it
    "clip": {"flow_contrast": "clip"},
    "uvm-clip": {"flow_channel": "uvm", "flow_contrast": "clip"},
    "no-multiview": {"multiview": False},
}


def prepare(videos: Path, workspace: Path) -> Path:
    """frames.h5 and flow.h5 of the folder dataset; returns its workspace dataset folder."""
    root = prepare_folder_input(videos, workspace / "videos")
    common = ["--dataset", "folder", "--workspace", str(workspace / "ws"), "-q"]
    subprocess.run(slic_command() + ["extract-frames", "--root", str(root), *common],
                   check=True)
    subprocess.run(slic_command() + ["compute-flow", *common], check=True)
    return workspace / "ws" / "folder"


def flow_contrast(store: ClipStore, clip_length: int, stride: int) -> list[tuple[float, float]]:
    """(std of the stored u images in levels, the clip-contrast gain) of every video's centre
    window."""
    found = []
    for video in range(len(store.table)):
        frames = centre_window(store.frame_count(video), clip_length, stride)
        u = store.flow(video, frames, "u")
        found.append((float(u.astype(np.float32).std()), stretch_gain(u, "u")))
    return found


def measure(encoder: Encoder, store: ClipStore) -> dict[str, float]:
    """Instance R@1 (projection and backbone) and collapse measures of `encoder`."""
    videos = np.arange(len(store.table))
    found: dict[str, float] = {}
    for feature in ("projection", "backbone"):
        clips = EvaluationClips(store, videos, BASE["clip_length"], BASE["stride"],
                                BASE["crop_size"], windows=2)
        pairs = embed_clips(encoder, clips, feature=feature, batch_size=16, workers=0,
                            compute=CPU, progress=SilentProgress(), average=False)
        _, nearest = nearest_neighbours(pairs[:, 0], pairs[:, 1], 1)
        found[f"instance_r1_{feature}"] = float((nearest[:, 0] == videos).mean())
    centre = embed_clips(encoder, EvaluationClips(store, videos, BASE["clip_length"],
                                                  BASE["stride"], BASE["crop_size"]),
                         feature="projection", batch_size=16, workers=0, compute=CPU,
                         progress=SilentProgress())
    health = embedding_health(centre)
    found["mean_cosine"], found["effective_rank"] = health["mean_cosine"], health[
        "effective_rank"]
    return found


def pretrain(workspace: Path, variant: str, seed: int, epochs: int) -> Path:
    """Run `slic pretrain` for one variant and seed; returns its best.pt."""
    run = f"{variant}-seed{seed}"
    settings = {**BASE, **VARIANTS[variant], "seed": seed, "epochs": epochs,
                "eval_every": 0, "run_name": run}
    subprocess.run(slic_command() + [
        "pretrain", "--dataset", "folder", "--workspace", str(workspace / "ws"), "--force",
        "--json", "-q", *[f"--set=pretrain.{k}={v}" for k, v in settings.items()]],
        check=True, capture_output=True, text=True)
    return workspace / "ws" / "folder" / "runs" / run / "best.pt"


METRICS = ("instance_r1_projection", "instance_r1_backbone", "mean_cosine", "effective_rank")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=default_real_clips(),
                        help="<class>/<video> files, or a collection shaped like real-clips")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["stored", "clip"],
                        choices=list(VARIANTS))
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=None,
                        help="append every result to this JSONL file; results in it are read "
                             "back, not run again")
    args = parser.parse_args()
    print_machine(machine_info())
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="slic-bench-real-"))
    folder = prepare(args.videos, workspace)
    store = ClipStore(folder / "frames.h5", folder / "flow.h5")
    contrast = flow_contrast(store, BASE["clip_length"], BASE["stride"])
    stds, gains = [c[0] for c in contrast], [c[1] for c in contrast]
    print(f"{len(store.table)} videos; stored u std per centre window: median "
          f"{statistics.median(stds):.1f} levels (range {min(stds):.1f}-{max(stds):.1f}); "
          f"clip-contrast gain median {statistics.median(gains):.1f}x")
    logged = logged_runs(args.log)
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        runs = [("random init", None)] + [(v, v) for v in args.variants]
        for name, variant in runs:
            if (name, seed) in logged:
                found = logged[(name, seed)]
            elif variant is None:
                torch.manual_seed(seed)
                found = measure(Encoder(BASE["arch"]), store)
            else:
                encoder, _ = load_encoder(pretrain(workspace, variant, seed, args.epochs))
                found = measure(encoder, store)
            results.setdefault(name, []).append(found)
            print(f"{name} seed {seed}: " + " ".join(f"{k} {found[k]:.3f}" for k in METRICS),
                  flush=True)
            if args.log is not None and (name, seed) not in logged:
                with open(args.log, "a") as log:
                    log.write(json.dumps({"variant": name, "seed": seed, **found}) + "\n")
    print(f"\n{args.epochs} epochs, seeds {args.seeds} (mean ± standard error; instance R@1 "
          f"chance {1 / len(store.table):.3f}):")
    print(table(["variant", "instance R@1 (projection)", "instance R@1 (backbone)",
                 "mean cosine", "effective rank"],
                [[name, *(spread([r[k] for r in runs]) for k in METRICS)]
                 for name, runs in results.items()]))


if __name__ == "__main__":
    main()
