"""FINCH speed: slic's FINCH against the authors' package (finch-clust, exact path) and
against the floor of the method, faiss's exact first-neighbour search of the same data.

Run from the repository root:
    python benchmarks/bench_cluster.py --sizes 10000 20000 --dim 512 --runs 3
    python benchmarks/bench_cluster.py --scale 1000000 --dim 128      # approximate (IVF)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stages.clustering.finch import finch, first_neighbours  # noqa: E402


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 points around n // 50 random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 50), dim)).astype(np.float32)
    points = centres[rng.integers(len(centres), size=n)]
    return points + 0.7 * rng.normal(size=(n, dim)).astype(np.float32)


def timed(function, runs: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def compare(sizes: list[int], dim: int, runs: int) -> None:
    from finch.finch import FINCH
    from sklearn.metrics import adjusted_rand_score

    print("| N | D | finch-clust (s) | slic FINCH (s) | faiss exact 1-NN alone (s) | speed-up "
          "| slic / floor | levels (clusters) | ARI per level |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        data = clustered(n, dim)
        floor, floor_runs, _ = timed(lambda d=data: first_neighbours(d, "exact"), runs)
        ours, ours_runs, result = timed(lambda d=data: finch(d, neighbours="exact"), runs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs, theirs_runs, (labels, counts, _) = timed(
                lambda d=data: FINCH(d, distance="cosine", ann_threshold=len(d) + 1, verbose=False),
                runs)
        same = list(counts) == result.num_clusters
        aris = [adjusted_rand_score(labels[:, k], p) for k, p in enumerate(result.partitions)]
        print(f"| {n} | {dim} | {theirs:.2f} ({'/'.join(f'{t:.2f}' for t in theirs_runs)}) "
              f"| {ours:.2f} ({'/'.join(f'{t:.2f}' for t in ours_runs)}) "
              f"| {floor:.2f} ({'/'.join(f'{t:.2f}' for t in floor_runs)}) "
              f"| {theirs / ours:.1f}x | {ours / floor:.2f} "
              f"| {result.num_clusters}{'' if same else ' vs ' + str(list(counts))} "
              f"| {', '.join(f'{a:.3f}' for a in aris)} |", flush=True)


def scale(n: int, dim: int, subset: int, method: str) -> None:
    from sklearn.metrics import adjusted_rand_score

    data = clustered(n, dim)
    start = time.perf_counter()
    result = finch(data, neighbours=method)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"N={n} D={dim} {method}: {seconds:.1f} s, peak RSS {peak_gb:.2f} GB (data itself "
          f"{data.nbytes / 2**30:.2f} GB), levels {result.num_clusters}")
    part = data[:subset]
    exact = finch(part, neighbours="exact").partitions[0]
    approximate = finch(part, neighbours=method).partitions[0]
    print(f"partition 0 on the first {subset} points, {method} vs exact: ARI "
          f"{adjusted_rand_score(exact, approximate):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 20_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=None,
                        help="instead: one approximate run at this N (peak memory, time)")
    parser.add_argument("--subset", type=int, default=50_000)
    parser.add_argument("--nn", default="hnsw", help="approximate search for --scale")
    args = parser.parse_args()
    if args.scale:
        scale(args.scale, args.dim, args.subset, args.nn)
    else:
        compare(args.sizes, args.dim, args.runs)


if __name__ == "__main__":
    main()
