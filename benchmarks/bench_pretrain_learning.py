"""Does SLIC learn on the built-in synthetic data, and what does each part contribute?

Runs `slic pretrain` (r3d_tiny, CPU budget) on the synthetic dataset for each variant of the
paper's Table 3 ablation and each seed, and compares with a randomly initialised network of
the same seed: test-to-train kNN R@1/R@5 (centre clip) and the NMI of FINCH's finest
partition of the train features against the motion classes.

    python benchmarks/bench_pretrain_learning.py [--epochs 25] [--seeds 0 1 2]
        [--variants full no-warmup no-clustering no-multiview no-temporal supervised]
        [--workspace DIR]

The motion-only ablation (issue 14): objects of every class take every shape, so only the
motion tells the classes apart; the cached linear probe (backbone features) is added, and
each ablation is compared with full SLIC seed by seed (paired differences, mean ± standard
error):

    python benchmarks/bench_pretrain_learning.py --shape-probability 0 --linear-probe \
        --epochs 15 --warmup 5 --seeds 0 1 2 \
        --variants full no-clustering no-multiview no-temporal supervised \
        --log motion-only.jsonl
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
    logged_runs,
    machine_info,
    print_machine,
    slic_command,
    spread,
    standard_error,
    table,
)
from stages.clips.fixed_windows import EvaluationClips  # noqa: E402
from stages.clips.store import ClipStore  # noqa: E402
from stages.clustering.metrics import cluster_quality  # noqa: E402
from stages.clustering.partitions import cluster_features  # noqa: E402
from stages.evaluation.retrieval import retrieval_recall  # noqa: E402
from stages.models.encoder import Encoder  # noqa: E402
from stages.runtime.progress import SilentProgress  # noqa: E402
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
    # Not the paper's: the flow view shows u, v and magnitude instead of u alone, and/or each
    # flow view's contrast is stretched (pretrain.flow_contrast: clip).
    "full-uvm": {"flow_channel": "uvm"},
    "full-stretch": {"flow_contrast": "clip"},
    "full-uvm-stretch": {"flow_channel": "uvm", "flow_contrast": "clip"},
}


def prepare(workspace: Path, shape_probability: float, group_look: str) -> None:
    data = workspace / "demo-data"
    subprocess.run(slic_command() + [
        "make-dataset", "synthetic", "--out", str(data), "-q",
        f"--set=make_dataset.class_shape_probability={shape_probability}",
        f"--set=make_dataset.group_look={group_look}"], check=True)
    common = ["--dataset", "synthetic", "--workspace", str(workspace / "ws"), "-q"]
    subprocess.run(slic_command() + ["extract-frames", "--root", str(data), *common],
                   check=True)
    subprocess.run(slic_command() + ["compute-flow", *common], check=True)


def pretrain(workspace: Path, variant: str, seed: int, epochs: int,
             schedule: dict[str, int]) -> dict:
    settings = {**BASE, **schedule, **VARIANTS[variant], "seed": seed, "epochs": epochs,
                "eval_every": epochs, "run_name": f"{variant}-seed{seed}"}
    command = slic_command() + ["pretrain", "--dataset", "synthetic", "--workspace",
                                str(workspace / "ws"), "--force", "--json", "-q",
                                *[f"--set=pretrain.{k}={v}" for k, v in settings.items()]]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def linear_probe(workspace: Path, run: str, seed: int, random: bool) -> float:
    """Top-1 of the cached linear probe (backbone features of 5 clips a video) of a run, or
    of an untrained encoder with the run's settings and `seed`."""
    command = slic_command() + [
        "linear-probe", "--dataset", "synthetic", "--workspace", str(workspace / "ws"),
        "--run", str(workspace / "ws" / "synthetic" / "runs" / run), "--protocol", "cached",
        "--json", "-q", f"--set=pretrain.seed={seed}", *(["--random-init"] if random else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["top1"]


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


METRICS = ("r1", "r5", "nmi", "probe")


def paired_rows(results: dict[str, list[dict]], seeds: list[int]) -> list[list[str]]:
    """full minus each other variant, seed by seed: mean ± standard error of the difference,
    and whether full is ahead by more than two standard errors."""
    rows = []
    full = results.get("full", [])
    for name, runs in results.items():
        if name == "full" or len(runs) != len(full) or len(runs) < 2:
            continue
        cells = [f"full - {name}"]
        for key in METRICS:
            if key not in runs[0] or key not in full[0]:
                cells.append("-")
                continue
            gaps = [f[key] - r[key] for f, r in zip(full, runs)]
            error = standard_error(gaps)
            ahead = statistics.mean(gaps) > 2 * error
            cells.append(f"{statistics.mean(gaps):+.3f} ± {error:.3f}{' (>2 SE)' if ahead else ''}")
        rows.append(cells)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--workspace", type=Path, default=None,
                        help="keep data and runs here (default: a temporary folder)")
    parser.add_argument("--shape-probability", type=float, default=1.0,
                        help="make_dataset.class_shape_probability: 0 = motion only")
    parser.add_argument("--group-look", default="independent",
                        choices=("independent", "shared"),
                        help="make_dataset.group_look: shared = a group's videos look alike, "
                             "as UCF101's")
    parser.add_argument("--warmup", type=int, default=BASE["cluster_warmup_epochs"],
                        help="pretrain.cluster_warmup_epochs")
    parser.add_argument("--cluster-every", type=int, default=BASE["cluster_every"])
    parser.add_argument("--linear-probe", action="store_true",
                        help="add the cached linear probe's top-1 of every run")
    parser.add_argument("--log", type=Path, default=None,
                        help="append every finished run to this JSONL file as it ends; runs "
                             "(variant, seed) already in it are read back, not run again")
    args = parser.parse_args()
    print_machine(machine_info())
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="slic-bench-learning-"))
    prepare(workspace, args.shape_probability, args.group_look)
    schedule = {"cluster_warmup_epochs": args.warmup, "cluster_every": args.cluster_every}
    results: dict[str, list[dict]] = {}
    logged = logged_runs(args.log)

    def record(name: str, seed: int, found: dict) -> None:
        results.setdefault(name, []).append(found)
        print(f"{name} seed {seed}: " + " ".join(
            f"{key} {found[key]:.3f}" for key in METRICS if found.get(key) is not None)
            + (f" ({found['seconds']:.0f} s)" if "seconds" in found else ""), flush=True)
        if args.log is not None and (name, seed) not in logged:
            with open(args.log, "a") as log:
                log.write(json.dumps({"variant": name, "seed": seed, **{
                    k: v for k, v in found.items() if isinstance(v, (int, float, str))}}) + "\n")

    for seed in args.seeds:
        baseline = logged.get(("random init", seed)) or random_init(workspace, seed)
        for variant in args.variants:
            if (variant, seed) in logged:
                record(variant, seed, logged[(variant, seed)])
                continue
            summary = pretrain(workspace, variant, seed, args.epochs, schedule)
            if args.linear_probe:
                run = f"{variant}-seed{seed}"
                summary["probe"] = linear_probe(workspace, run, seed, random=False)
                if "probe" not in baseline:  # the baseline's probe, with the runs' settings
                    baseline["probe"] = linear_probe(workspace, run, seed, random=True)
            record(variant, seed, summary)
        record("random init", seed, baseline)
    rows = []
    for name, runs in results.items():
        seconds = [r["seconds"] for r in runs if "seconds" in r]
        rows.append([name, *(spread([r[key] for r in runs]) if key in runs[0] else "-"
                             for key in METRICS),
                     f"{statistics.mean(seconds):.0f}" if seconds else "-"])
    print(f"\n{args.epochs} epochs, seeds {args.seeds}, class shape probability "
          f"{args.shape_probability}, group look {args.group_look} (mean ± standard error):")
    print(table(["variant", "R@1", "R@5", "NMI (FINCH finest)", "linear probe top-1", "s/run"],
                rows))
    paired = paired_rows(results, args.seeds)
    if paired:
        print("\nfull SLIC against each variant, seed by seed (mean ± standard error):")
        print(table(["difference", "R@1", "R@5", "NMI", "linear probe"], paired))


if __name__ == "__main__":
    main()
