"""FINCH speed: slic's FINCH against the authors' package (finch-clust, exact path) and
against the floor of the method, faiss's exact first-neighbour search of the same data; and
the whole `slic cluster` command (with labels, so the quality metrics run) against a whole
finch-clust process.

Run from the repository root:
    python benchmarks/bench_cluster.py --sizes 10000 20000 50000 --dim 512 --runs 5
    python benchmarks/bench_cluster.py --command --sizes 20000 --classes 200 --runs 3
    python benchmarks/bench_cluster.py --scale 1000000 --dim 128      # approximate (HNSW)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO_ROOT, ForeignCpu, machine_info, print_machine  # noqa: E402
from stages.clustering.finch import finch  # noqa: E402
from stages.clustering.neighbours import normalised  # noqa: E402


def clustered_with_centres(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 points around n // 50 random centres, and each point's centre (n,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 50), dim)).astype(np.float32)
    centre = rng.integers(len(centres), size=n)
    return centres[centre] + 0.7 * rng.normal(size=(n, dim)).astype(np.float32), centre


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return clustered_with_centres(n, dim, seed)[0]


def faiss_first_neighbours(data: np.ndarray) -> np.ndarray:
    """The floor: faiss's exact inner-product search of the unit rows, two results a row."""
    import faiss

    unit = normalised(data)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    return index.search(unit, 2)[1]


def timed(function, runs: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


# finch-clust runs in a child process: at 50,000 points its exact path dies with SIGSEGV on
# this machine (its 50,000 x 50,000 distance matrix), which must not end the benchmark.
FINCH_CLUST_RUNS = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from finch.finch import FINCH
data, runs = np.load(sys.argv[1]), int(sys.argv[2])
times = []
for _ in range(runs):
    start = time.perf_counter()
    labels, counts, _ = FINCH(data, distance="cosine", ann_threshold=len(data) + 1,
                              verbose=False)
    times.append(time.perf_counter() - start)
np.save(sys.argv[3], labels)
print(json.dumps({"times": times, "counts": [int(c) for c in counts]}))
"""


def finch_clust(data: np.ndarray, runs: int) -> tuple[list[float], np.ndarray, list[int]] | str:
    """finch-clust's times, labels (N, levels) and counts, or why it produced none."""
    with tempfile.TemporaryDirectory() as folder:
        features, labels = Path(folder) / "data.npy", Path(folder) / "labels.npy"
        np.save(features, data)
        done = subprocess.run([sys.executable, "-c", FINCH_CLUST_RUNS, str(features),
                               str(runs), str(labels)], capture_output=True, text=True)
        if done.returncode != 0:
            return f"failed: exit {done.returncode}" + (
                f" (signal {-done.returncode})" if done.returncode < 0 else "")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        return report["times"], np.load(labels), report["counts"]


# The whole `slic cluster` command in a child process, as its console script runs it, with
# the stage's two library calls wrapped in timers: the split comes from the same run.
SLIC_COMMAND = """
import json, sys, time
start = time.perf_counter()
root, split_path, arguments = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, root)
import stages.cluster as stage
from slic_cli.app import main
spent = {"finch": 0.0, "metrics": 0.0, "metric_calls": 0}
def timer(key, function):
    def call(*args, **kwargs):
        begin = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - begin
            spent["metric_calls"] += key == "metrics"
    return call
stage.cluster_features = timer("finch", stage.cluster_features)
stage.cluster_quality = timer("metrics", stage.cluster_quality)
spent["imports"] = time.perf_counter() - start
sys.argv = ["slic", "cluster", *arguments]
try:
    main()
except SystemExit as stop:
    if stop.code:
        raise
spent["stages_from"] = stage.__file__
open(split_path, "w").write(json.dumps(spent))
"""

# A whole finch-clust process on the same file: read, FINCH (exact cosine), save the labels.
# It has no quality metrics; slic's command also computes them and writes assignments.h5.
FINCH_CLUST_COMMAND = """
import sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from finch.finch import FINCH
with np.load(sys.argv[1]) as archive:
    data = archive["features"]
start = time.perf_counter()
labels, counts, _ = FINCH(data, distance="cosine", ann_threshold=len(data) + 1, verbose=False)
seconds = time.perf_counter() - start
np.save(sys.argv[2], labels)
print(seconds)
"""


def timed_process(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds used by others meanwhile, stdout) of a child process."""
    with ForeignCpu() as foreign:
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, foreign.seconds, done.stdout


def whole_commands(sizes: list[int], dim: int, classes: int, runs: int, root: Path) -> None:
    """`slic cluster` (all partitions, quality against labels) against a finch-clust process,
    run alternately (which goes first alternates too); medians over `runs`."""
    print_machine(machine_info())
    print(f"slic from {root}")
    print("| N | D | classes | finch-clust process (s) | slic cluster command (s) | speed-up "
          "| slic: imports / FINCH / metrics (calls) / rest: start, read, write (s) "
          "| finch-clust FINCH call alone (s) | CPU s used by others (slic, finch-clust) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        points, centre = clustered_with_centres(n, dim)
        with tempfile.TemporaryDirectory() as folder:
            data, split = Path(folder) / "features.npz", Path(folder) / "split.json"
            np.savez(data, features=points, labels=centre % classes)
            slic = [sys.executable, "-c", SLIC_COMMAND, str(root), str(split), "--features",
                    str(data), "--out", str(Path(folder) / "assignments.h5"), "--quiet",
                    "--force"]  # every run computes: the output of the one before is up to date
            theirs = [sys.executable, "-c", FINCH_CLUST_COMMAND, str(data),
                      str(Path(folder) / "labels.npy")]
            slic_runs, theirs_runs, splits, theirs_finch, foreign = [], [], [], [], ([], [])
            for run in range(runs):
                for side in ((0, 1) if run % 2 == 0 else (1, 0)):
                    if side == 0:
                        wall, other, _ = timed_process(slic)
                        spent = json.loads(split.read_text())
                        if not spent["stages_from"].startswith(str(root)):
                            raise RuntimeError(f"slic ran from {spent['stages_from']}, "
                                               f"not {root}")
                        slic_runs.append(wall)
                        splits.append((spent["imports"], spent["finch"], spent["metrics"],
                                       wall - spent["imports"] - spent["finch"]
                                       - spent["metrics"]))
                    else:
                        wall, other, out = timed_process(theirs)
                        theirs_runs.append(wall)
                        theirs_finch.append(float(out.strip().splitlines()[-1]))
                    foreign[side].append(other)
        start_up, finch_s, metrics_s, rest = (statistics.median(s[k] for s in splits)
                                              for k in range(4))
        split_text = (f"{start_up:.2f} / {finch_s:.2f} / {metrics_s:.3f} "
                      f"({spent['metric_calls']}) / {rest:.2f}")
        print(f"| {n} | {dim} | {classes} | {runs_text(theirs_runs)} | {runs_text(slic_runs)} "
              f"| {statistics.median(theirs_runs) / statistics.median(slic_runs):.2f}x "
              f"| {split_text} | {runs_text(theirs_finch)} "
              f"| {'/'.join(f'{s:.1f}' for s in foreign[0])}, "
              f"{'/'.join(f'{s:.1f}' for s in foreign[1])} |", flush=True)


def runs_text(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} ({'/'.join(f'{t:.2f}' for t in times)})"


def compare(sizes: list[int], dim: int, runs: int) -> None:
    from sklearn.metrics import adjusted_rand_score

    print("| N | D | finch-clust (s) | slic FINCH (s) | faiss exact 1-NN alone (s) | speed-up "
          "| slic / floor | levels (clusters) | ARI per level |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        data = clustered(n, dim)
        floor, floor_runs, _ = timed(lambda d=data: faiss_first_neighbours(d), runs)
        ours, ours_runs, result = timed(lambda d=data: finch(d, neighbours="exact"), runs)
        theirs = finch_clust(data, runs)
        if isinstance(theirs, str):
            theirs_text, speed_up, aris, same = theirs, "-", [], False
        else:
            theirs_runs, labels, counts = theirs
            theirs_text = runs_text(theirs_runs)
            speed_up = f"{statistics.median(theirs_runs) / ours:.1f}x"
            same = counts == result.num_clusters
            aris = [adjusted_rand_score(labels[:, k], p) for k, p in enumerate(result.partitions)]
        print(f"| {n} | {dim} | {theirs_text} | {runs_text(ours_runs)} | {runs_text(floor_runs)} "
              f"| {speed_up} | {ours / floor:.2f} "
              f"| {result.num_clusters}{'' if same else ' (finch-clust: see left)'} "
              f"| {', '.join(f'{a:.3f}' for a in aris) or '-'} |", flush=True)


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
    parser.add_argument("--command", action="store_true",
                        help="instead: the whole `slic cluster` command against a whole "
                        "finch-clust process")
    parser.add_argument("--classes", type=int, default=200,
                        help="--command: true labels, centre index modulo this")
    parser.add_argument("--slic-root", type=Path, default=REPO_ROOT,
                        help="--command: the slic checkout to run (e.g. an older commit "
                        "exported with git archive)")
    args = parser.parse_args()
    if args.command:
        whole_commands(args.sizes, args.dim, args.classes, args.runs, args.slic_root.resolve())
    elif args.scale:
        scale(args.scale, args.dim, args.subset, args.nn)
    else:
        compare(args.sizes, args.dim, args.runs)


if __name__ == "__main__":
    main()
