"""Does SLIC learn on the built-in synthetic data, and what does each part contribute?

Runs `slic pretrain` (r3d_tiny, CPU budget) on the synthetic dataset for each variant of the
paper's Table 3 ablation and each seed, and compares with a randomly initialised network of
the same seed: test-to-train kNN R@1/R@5 (centre clip) and the NMI of FINCH's finest
partition of the train features against the motion classes.

    python benchmarks/bench_pretrain_learning.py [--epochs 25] [--seeds 0 1 2]
        [--variants full no-warmup no-clustering no-multiview no-temporal supervised]
        [--workspace DIR]
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
from benchmarks._common import machine_info, print_machine, slic_command, table  # noqa: E402
from stages.clips.evaluation import EvaluationClips  # noqa: E402
from stages.clips.store import ClipStore  # noqa: E402
from stages.clustering.metrics import cluster_quality  # noqa: E402
from stages.clustering.partitions import cluster_features  # noqa: E402
from stages.evaluation.retrieval import retrieval_recall  # noqa: E402
from stages.models.encoder import Encoder  # noqa: E402
from stages.progress import SilentProgress  # noqa: E402
from stages.training.compute import Compute  # noqa: E402
from stages.training.embedding import embed_clips  # noqa: E402

CPU = Compute(torch.device("cpu"), "off", torch.contiguous_format)

# The CPU budget of the demo: r3d_tiny on 8-frame clips (every 3rd frame), 64 x 64 crops,
# instance-only training for 10 epochs before the first FINCH round.
BASE = {"arch": "r3d_tiny", "clip_length": 8, "stride": 3, "crop_size": 64, "batch_size": 16,
        "cluster_every": 5, "cluster_warmup_epochs": 10, "workers": 2}
VARIANTS = {
    "full": {},
    "no-warmup": {"cluster_warmup_epochs": 0},  # the paper's schedule: FINCH from epoch 0
    "no-clustering": {"pseudo_labels": "none"},
    "no-multiview": {"multiview": False},
    "no-temporal": {"temporal_loss": False},
    "supervised": {"pseudo_labels": "labels"},  # an upper bound: true classes as clusters
}


def prepare(workspace: Path) -> None:
    data = workspace / "demo-data"
    subprocess.run(slic_command() + ["make-dataset", "synthetic", "--out", str(data), "-q"],
                   check=True)
    common = ["--dataset", "synthetic", "--workspace", str(workspace / "ws"), "-q"]
    subprocess.run(slic_command() + ["extract-frames", "--root", str(data), *common],
                   check=True)
    subprocess.run(slic_command() + ["compute-flow", *common], check=True)


def pretrain(workspace: Path, variant: str, seed: int, epochs: int) -> dict:
    settings = {**BASE, **VARIANTS[variant], "seed": seed, "epochs": epochs,
                "eval_every": epochs, "run_name": f"{variant}-seed{seed}"}
    command = slic_command() + ["pretrain", "--dataset", "synthetic", "--workspace",
                                str(workspace / "ws"), "--force", "--json", "-q",
                                *[f"--set=pretrain.{k}={v}" for k, v in settings.items()]]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def random_init(workspace: Path, seed: int) -> dict:
    """R@1, R@5 and FINCH-finest NMI of an untrained encoder built with `seed`."""
    folder = workspace / "ws" / "synthetic"
    store = ClipStore(folder / "frames.h5")
    membership = store.table.splits[:, 0]
    labels = store.table.columns["label"].astype(np.int64)
    train, test = np.flatnonzero(membership == 1), np.flatnonzero(membership == 2)
    torch.manual_seed(seed)
    encoder = Encoder("r3d_tiny")

    def embed(videos: np.ndarray) -> np.ndarray:
        clips = EvaluationClips(store, videos, BASE["clip_length"], BASE["stride"],
                                BASE["crop_size"])
        return embed_clips(encoder, clips, feature="projection", batch_size=32, workers=2,
                           compute=CPU, progress=SilentProgress())

    gallery, queries = embed(train), embed(test)
    recall = retrieval_recall(queries, labels[test], gallery, labels[train], (1, 5))
    finest = cluster_features(gallery, "finch").chosen
    return {"r1": recall[1], "r5": recall[5], "nmi": cluster_quality(labels[train], finest).nmi}


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--workspace", type=Path, default=None,
                        help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    print_machine(machine_info())
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="slic-bench-learning-"))
    prepare(workspace)
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        results.setdefault("random init", []).append(random_init(workspace, seed))
        for variant in args.variants:
            summary = pretrain(workspace, variant, seed, args.epochs)
            results.setdefault(variant, []).append(summary)
            print(f"{variant} seed {seed}: R@1 {summary.get('r1')} R@5 {summary.get('r5')} "
                  f"NMI {summary.get('nmi')} ({summary['seconds']:.0f} s)", flush=True)
    rows = []
    for name, runs in results.items():
        seconds = [r["seconds"] for r in runs if "seconds" in r]
        rows.append([name, spread([r["r1"] for r in runs]), spread([r["r5"] for r in runs]),
                     spread([r["nmi"] for r in runs]),
                     f"{statistics.mean(seconds):.0f}" if seconds else "-"])
    print(f"\n{args.epochs} epochs, seeds {args.seeds} (mean ± std):")
    print(table(["variant", "R@1", "R@5", "NMI (FINCH finest)", "s/run"], rows))


if __name__ == "__main__":
    main()
