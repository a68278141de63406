"""Retrieval: speed at UCF101 scale, agreement with a brute-force search, embedding throughput.

1. R@k of 3,783 queries against 9,537 gallery videos (UCF101 split 1 sizes), synthetic
   128-d features: seconds (median of --runs), slic's search against numpy brute force.
2. R@1/5/10/20/50 of the real UCF101 VGG16 features (../shared/data/ucf101-15-vgg16) through
   `slic retrieve --features`, against a brute-force numpy cosine search.
3. Feature extraction: clips/s of slic's embedding pass (frames.h5 -> clips -> model; on CPU
   loader workers only on cores the model leaves free), of the same pass forced to use
   --embed-workers processes, and of a bare inference loop on tensors already in memory.

    python benchmarks/bench_retrieve.py [--runs 5] [--frames FRAMES_H5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    REPO_ROOT,
    machine_info,
    median,
    print_machine,
    slic_command,
    table,
)
from stages.clips.fixed_windows import EvaluationClips  # noqa: E402
from stages.clips.store import ClipStore  # noqa: E402
from stages.evaluation.retrieval import retrieval_recall  # noqa: E402
from stages.models.encoder import Encoder  # noqa: E402
from stages.runtime.progress import SilentProgress  # noqa: E402
from stages.training.compute import Compute  # noqa: E402
from stages.training.embedding import embed_clips  # noqa: E402

CPU = Compute(torch.device("cpu"), "off", torch.contiguous_format)

KS = (1, 5, 10, 20, 50)


def brute_force(queries, query_labels, gallery, gallery_labels, ks) -> dict[int, float]:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    order = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :max(ks)]
    hits = gallery_labels[order] == query_labels[:, None]
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def ucf_scale(runs: int) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(101, 128))
    gallery_labels, query_labels = rng.integers(0, 101, 9537), rng.integers(0, 101, 3783)
    gallery = (centres[gallery_labels] + rng.normal(scale=3, size=(9537, 128))).astype(
        np.float32)
    queries = (centres[query_labels] + rng.normal(scale=3, size=(3783, 128))).astype(
        np.float32)
    slic_times, numpy_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        ours = retrieval_recall(queries, query_labels, gallery, gallery_labels, KS)
        slic_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        reference = brute_force(queries, query_labels, gallery, gallery_labels, KS)
        numpy_times.append(time.perf_counter() - started)
    gap = max(abs(ours[k] - reference[k]) for k in KS)
    print("\n3,783 queries x 9,537 gallery, 128-d:")
    print(table(["slic (s)", "numpy brute force (s)", "max |R@k difference|", "R@1"],
                [[f"{median(slic_times):.3f}", f"{median(numpy_times):.3f}", f"{gap:.1e}",
                  f"{ours[1]:.4f}"]]))


def real_features() -> None:
    path = REPO_ROOT.parent / "shared" / "data" / "ucf101-15-vgg16" / "features.npz"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "retrieval.h5"
        done = subprocess.run(slic_command() + ["retrieve", "--features", str(path), "--out",
                                                str(out), "--json", "-q"],
                              capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout)
    archive = np.load(path)
    split, labels, features = archive["split"].astype(str), archive["labels"], archive["features"]
    reference = brute_force(features[split == "test"], labels[split == "test"],
                            features[split == "train"], labels[split == "train"], KS)
    rows = [[f"R@{k}", f"{summary[f'r{k}']:.6f}", f"{reference[k]:.6f}",
             f"{abs(summary[f'r{k}'] - reference[k]):.1e}"] for k in KS]
    print(f"\nreal UCF101 VGG16 features ({summary['num_queries']} queries, "
          f"{summary['num_gallery']} gallery):")
    print(table(["k", "slic retrieve --features", "numpy brute force", "difference"], rows))


def embedding_throughput(frames: Path, runs: int, workers: int, arch: str) -> None:
    """slic's embedding pass as it runs (on CPU: workers only on cores the model leaves free),
    the same pass forced to use `workers` loader processes, and a bare inference loop."""
    import stages.training.embedding as embedding

    store = ClipStore(frames)
    videos = np.arange(min(len(store.table), 96 if arch == "r3d_tiny" else 24))
    clips = EvaluationClips(store, videos, 16, 1, 112, 2)
    torch.manual_seed(0)
    encoder = Encoder(arch).eval()
    batches = [torch.stack([clips[i][0] for i in range(j, j + 16)]) for j in range(0, 48, 16)]
    chosen = embedding.inference_workers(workers, torch.device("cpu"))
    measured: dict[str, list[float]] = {"bare": [], "slic": [], "forced": []}

    def embed() -> float:
        started = time.perf_counter()
        embed_clips(encoder, clips, feature="projection", batch_size=16, workers=workers,
                    compute=CPU, progress=SilentProgress())
        return len(clips) / (time.perf_counter() - started)

    rule = embedding.inference_workers
    for _ in range(runs):
        measured["slic"].append(embed())
        embedding.inference_workers = lambda requested, device: requested
        try:
            measured["forced"].append(embed())
        finally:
            embedding.inference_workers = rule
        started = time.perf_counter()
        with torch.no_grad():
            for index in range(len(clips) // 16):
                encoder(batches[index % len(batches)])
        measured["bare"].append(16 * (len(clips) // 16) / (time.perf_counter() - started))
    bare = median(measured["bare"])
    print(f"\nembedding {len(clips)} clips of 16x112x112 with {arch} (clips/s, median of "
          f"{runs}):")
    print(table(["bare loop on tensors", f"slic embed ({chosen} workers: the CPU rule)", "ratio",
                 f"forced to {workers} workers", "ratio"],
                [[f"{bare:.1f}", f"{median(measured['slic']):.1f}",
                  f"{median(measured['slic']) / bare:.2f}", f"{median(measured['forced']):.1f}",
                  f"{median(measured['forced']) / bare:.2f}"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=Path, default=None,
                        help="a frames.h5 for the embedding measurement (skipped without)")
    parser.add_argument("--embed-workers", type=int, default=2)
    parser.add_argument("--embed-arch", nargs="+", default=["r3d_tiny", "r3d_18"])
    args = parser.parse_args()
    print_machine(machine_info())
    torch.set_num_threads(2)
    ucf_scale(args.runs)
    real_features()
    if args.frames:
        for arch in args.embed_arch:
            embedding_throughput(args.frames, max(args.runs // 2, 1), args.embed_workers, arch)


if __name__ == "__main__":
    main()
