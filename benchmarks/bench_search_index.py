"""The index behind `slic search` at scale (issue 25, item 2): for each collection size and
method (exact, hnsw, ivf of stages/search), the whole build's wall time, its peak resident
memory, the index file's size, the time to load it back, the latency of single-query searches
(median and p95, the query's embedding excluded) and recall@10 against exact search.

    python benchmarks/bench_search_index.py [--sizes 100000 1000000] [--dim 128]
        [--queries 1000] [--method exact hnsw ivf] [--work DIR]

Data: embedding-like features, made once per size and kept in --work. --clusters (1,000)
Gaussian clusters of lognormal sizes (sigma 1), their centres uniform on the unit sphere; each
cluster spreads along its own random --rank (16) directions with standard deviations
--spread / sqrt(i), i = 1..rank, plus isotropic noise of norm --noise; rows normalised. The
queries are --queries more rows of the same clusters, not in the collection. Recall@10 is the
share of each query's exact top 10 (the NumPy exact search, stages.evaluation.retrieval) that
the index returns in its top 10.

Each build runs in a fresh child process (`bench_search_index.py measure ...`), so its peak
resident memory (ru_maxrss, read right after the build) is the build's own: the features as
loaded from .npy, the normalised copy, the index, faiss's buffers and the calibration. The
exact method above --exact-full rows is timed and scored on --exact-sample queries only (each
single query scans the whole collection).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import ForeignCpu, machine_info, print_machine, table  # noqa: E402
from stages.evaluation.retrieval import unit_rows  # noqa: E402
from stages.search.calibration import overlap_recall  # noqa: E402
from stages.search.exact import ExactSearch  # noqa: E402
from stages.search.index import SearchIndex  # noqa: E402

K = 10
TARGET_BUILD_S, TARGET_RSS_GB, TARGET_QUERY_MS, TARGET_RECALL = 600.0, 4.0, 50.0, 0.95


def embedding_like(count: int, dim: int, clusters: int, rank: int, spread: float, noise: float,
                   seed: int) -> np.ndarray:
    """(count, dim) float32 unit rows of clustered data (see the module docstring), in random
    order."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scales = (spread / np.sqrt(np.arange(1, rank + 1))).astype(np.float32)
    weights = rng.lognormal(0.0, 1.0, clusters)
    counts = rng.multinomial(count, weights / weights.sum())
    rows = np.empty((count, dim), np.float32)
    start = 0
    for centre, size in zip(centres, counts):
        basis = rng.standard_normal((rank, dim), dtype=np.float32) / np.sqrt(dim)
        offsets = (rng.standard_normal((size, rank), dtype=np.float32) * scales) @ basis
        isotropic = rng.standard_normal((size, dim), dtype=np.float32) * (noise / np.sqrt(dim))
        rows[start:start + size] = centre + offsets + isotropic
        start += size
    rows = rows[rng.permutation(count)]
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def prepared(args: argparse.Namespace, count: int) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Paths of the collection and query .npy files for `count` rows, made if missing, and the
    queries' exact top-K similarities and indices (cached beside them)."""
    stem = (f"n{count}-d{args.dim}-q{args.queries}-c{args.clusters}-r{args.rank}"
            f"-s{args.spread}-e{args.noise}-seed{args.seed}")
    collection, queries = args.work / f"{stem}.npy", args.work / f"{stem}-queries.npy"
    truth = args.work / f"{stem}-exact-top{K}.npz"
    if not (collection.is_file() and queries.is_file()):
        started = time.perf_counter()
        rows = embedding_like(count + args.queries, args.dim, args.clusters, args.rank,
                              args.spread, args.noise, args.seed)
        np.save(queries, rows[:args.queries])
        np.save(collection, rows[args.queries:])
        del rows
        print(f"made {count:,} + {args.queries:,} rows in {time.perf_counter() - started:.1f} s",
              flush=True)
    if not truth.is_file():
        started = time.perf_counter()
        similarities, indices = ExactSearch(unit_rows(np.load(collection))).search(
            unit_rows(np.load(queries)), K)
        np.savez(truth, similarities=similarities, indices=indices)
        print(f"exact top-{K} of {args.queries:,} queries in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    with np.load(truth) as stored:
        return collection, queries, stored["similarities"], stored["indices"]


def measure(args: argparse.Namespace) -> None:
    """Child process: build, save, load back, time single queries, write the batch results."""
    features = np.load(args.features)
    queries = np.load(args.queries)[:args.query_count]
    started = time.perf_counter()
    index = SearchIndex.build(features, args.method, seed=args.seed)
    build_s = time.perf_counter() - started
    build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    described = index.description
    started = time.perf_counter()
    index.save(args.index)
    save_s = time.perf_counter() - started
    del index, features
    gc.collect()
    started = time.perf_counter()
    index = SearchIndex.load(args.index)
    load_s = time.perf_counter() - started
    index.search(queries[:1], K)  # warm-up: first touch of the loaded pages
    latencies = []
    for row in range(len(queries)):
        started = time.perf_counter()
        index.search(queries[row:row + 1], K)
        latencies.append(time.perf_counter() - started)
    np.save(args.found, index.search(queries, K)[1])
    print(json.dumps({
        "build_s": build_s, "build_rss": build_rss, "save_s": save_s, "load_s": load_s,
        "size": args.index.stat().st_size, "method": described.method,
        "parameters": described.parameters, "calibrated_recall": described.recall,
        "latency_median_ms": 1000 * float(np.median(latencies)),
        "latency_p95_ms": 1000 * float(np.percentile(latencies, 95)), "timed": len(latencies),
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


def run_one(args: argparse.Namespace, count: int, method: str, collection: Path, queries: Path,
            truth: np.ndarray) -> dict:
    """One method at one size in a fresh child process; its figures and recall@K."""
    query_count = (args.exact_sample if method == "exact" and count > args.exact_full
                   else args.queries)
    found = args.work / f"found-{count}-{method}.npy"
    command = [sys.executable, __file__, "measure", "--features", str(collection),
               "--queries", str(queries), "--method", method, "--seed", str(args.seed),
               "--query-count", str(query_count), "--index", str(args.work / f"{method}.index"),
               "--found", str(found)]
    load_before = os.getloadavg()
    with ForeignCpu() as others:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{method} at {count:,} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    (args.work / f"{method}.index").unlink()
    figures.update(count=count, recall=overlap_recall(np.load(found), truth[:query_count]),
                   child_wall_s=wall, others_cpu_s=others.seconds, load_before=load_before)
    return figures


def verdict(row: dict) -> str:
    """Which of the four targets the row meets."""
    misses = [name for name, met in (
        ("build", row["build_s"] < TARGET_BUILD_S),
        ("memory", row["build_rss"] < TARGET_RSS_GB * 2**30),
        ("query", row["latency_p95_ms"] < TARGET_QUERY_MS),
        ("recall", row["recall"] >= TARGET_RECALL)) if not met]
    return "all met" if not misses else "not met: " + ", ".join(misses)


def report(rows: list[dict]) -> str:
    """The markdown table of every measured (size, method)."""
    headers = ("N", "method", "settings (calibrated)", "build s", "peak RSS of the build",
               "index file", "load s", "query ms median / p95", "recall@10 (queries)",
               "others' CPU s", "load avg at start", "target")
    body = [(f"{row['count']:,}", row["method"],
             ", ".join(f"{k} {v}" for k, v in row["parameters"].items()) or "-",
             f"{row['build_s']:.1f}", f"{row['build_rss'] / 2**30:.2f} GB",
             f"{row['size'] / 2**20:,.0f} MB", f"{row['load_s']:.2f}",
             f"{row['latency_median_ms']:.2f} / {row['latency_p95_ms']:.2f}",
             f"{row['recall']:.4f} ({row['timed']:,})", f"{row['others_cpu_s']:.0f}",
             f"{row['load_before'][0]:.2f}", verdict(row)) for row in rows]
    return table(headers, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--method", nargs="+", default=["exact", "hnsw", "ivf"],
                        choices=["exact", "hnsw", "ivf", "auto"])
    parser.add_argument("--exact-full", type=int, default=200_000,
                        help="above this size the exact method uses --exact-sample queries")
    parser.add_argument("--exact-sample", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--spread", type=float, default=0.5)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "slic-search")
    parser.add_argument("--json", type=Path, help="append each row as a JSON line here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print_machine(machine_info())
    print("command: " + " ".join(sys.argv))
    rows = []
    for count in args.sizes:
        collection, queries, similarities, truth = prepared(args, count)
        print(f"N = {count:,}: median similarity of the queries' 1st / 10th exact neighbour "
              f"{np.median(similarities[:, 0]):.3f} / {np.median(similarities[:, K - 1]):.3f}",
              flush=True)
        for method in args.method:
            row = run_one(args, count, method, collection, queries, truth)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
    print(report(rows))


def child() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("measure")
    for name in ("--features", "--queries", "--index", "--found"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--query-count", type=int, required=True)
    measure(parser.parse_args())


if __name__ == "__main__":
    child() if sys.argv[1:2] == ["measure"] else main()
