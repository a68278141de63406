"""A UCF101-size rehearsal on CPU: every stage of the chain as the user runs it, at UCF101's
cardinality (9,537 train / 3,783 test videos, 101 classes), with tiny budgets; and the
clustering round measured at Kinetics-400's 240,000 training videos.

1. Writes a synthetic `folder` dataset: `--distinct` tiny videos actually encoded (a moving
   square, its direction set by the class), hard-linked (copied where links fail) under the
   13,320 names, with train.txt/test.txt. Timed apart: not part of the chain.
2. Runs extract-frames, compute-flow, pretrain (2 epochs, r3d_tiny, tiny clips, a FINCH round
   at epoch 0 and a final one), retrieve, linear-probe (windows, and cached) and finetune as
   whole `slic` commands, each timed (wall) with its peak memory: the largest single process
   (ru_maxrss from wait4, exact) and the sum over the process tree of PSS (sampled).
3. FINCH and the quality metrics, as a pretraining round calls them, on synthetic features
   at N = 240,000, D = 128, 400 classes, in a child process (wall, peak RSS).

Run from the repository root:
    python benchmarks/bench_rehearsal.py                       # the whole rehearsal
    python benchmarks/bench_rehearsal.py --scale 0.02 --kinetics-n 20000   # a dry run
    python benchmarks/bench_rehearsal.py --parts kinetics      # step 3 alone
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    ForeignCpu,
    machine_info,
    print_machine,
    slic_command,
    table,
)

UCF101_TRAIN, UCF101_TEST, UCF101_CLASSES = 9_537, 3_783, 101
NAME, RUN = "rehearsal", "rehearsal"
PARTS = ("generate", "chain", "kinetics")


# -- peak memory of a command ---------------------------------------------------------------
def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                # The command name may hold spaces and parentheses: ppid follows the last ')'.
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _tree_kib(root: int, key: str) -> int:
    """Sum of `key` (Pss or Rss, from smaps_rollup) in KiB over `root` and its descendants."""
    children, pending, total = _children_of(), [root], 0
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


@dataclass
class Measured:
    """A finished command: wall seconds, exit code, peak memory in MiB, its output."""

    wall: float
    returncode: int
    max_process_mib: float
    tree_pss_mib: float
    foreign_cpu: float
    stdout: str
    stderr: str
    summary: dict = field(default_factory=dict)


def measure(command: Sequence[str], interval: float) -> Measured:
    """Run `command`; its wall time, the largest RSS of any one of its processes (ru_maxrss of
    wait4, which covers the reaped descendants too) and the peak of its process tree's summed
    PSS (shared pages counted once), sampled every `interval` seconds.

    Reading smaps_rollup walks the page tables: about 0.2 s for a 1 GB process on this 2-core
    machine under load, so sampling every 0.5 s cost this script an eighth of a core."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            ForeignCpu() as foreign:
        start = time.perf_counter()
        process = subprocess.Popen(list(command), stdout=out, stderr=err, text=True)
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.wait(interval):
                peak[0] = max(peak[0], _tree_kib(process.pid, "Pss"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = Measured(wall, process.returncode, usage.ru_maxrss / 1024, peak[0] / 1024,
                      foreign.seconds, stdout, stderr)
    lines = stdout.strip().splitlines()
    if process.returncode == 0 and lines:
        try:
            result.summary = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    return result


# -- 1. the dataset -------------------------------------------------------------------------
def render(class_index: int, variant: int, frames: int, width: int, height: int
           ) -> np.ndarray:
    """(frames, height, width, 3) uint8: a square crossing a gradient, its direction set by
    the class, its colour, size, start and background by the variant."""
    rng = np.random.default_rng([class_index, variant])
    angle = 2 * math.pi * class_index / UCF101_CLASSES
    speed = rng.uniform(0.6, 1.4)
    side = int(rng.integers(6, 12))
    x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
    ys, xs = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 256, size=3)
    background = (base[None, None] + 40 * np.stack(
        [xs / width, ys / height, (xs + ys) / (width + height)], -1)).clip(0, 255)
    colour = rng.integers(0, 256, size=3)
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        x = int(x0 + speed * t * math.cos(angle)) % width
        y = int(y0 + speed * t * math.sin(angle)) % height
        frame = background.copy()
        frame[np.ix_((np.arange(side) + y) % height, (np.arange(side) + x) % width)] = colour
        video[t] = frame
    return video


def _render_files(jobs: list[tuple[int, int, str]], frames: int, width: int, height: int
                  ) -> None:
    from stages.io.video import write_video

    for class_index, variant, path in jobs:
        write_video(Path(path), render(class_index, variant, frames, width, height), 25.0)


def build_dataset(root: Path, scale: float, distinct: int, frames: int, width: int,
                  height: int, workers: int) -> dict:
    """The `folder` layout with train.txt/test.txt; returns counts and timings."""
    from concurrent.futures import ProcessPoolExecutor

    if root.exists():
        shutil.rmtree(root)
    sources = root.parent / "distinct-videos"
    if sources.exists():
        shutil.rmtree(sources)
    sources.mkdir(parents=True)
    classes = [f"Class{c:03d}" for c in range(UCF101_CLASSES)]
    per_class = max(1, distinct // UCF101_CLASSES)
    jobs = [(c, v, str(sources / f"{c:03d}_{v}.avi")) for c in range(UCF101_CLASSES)
            for v in range(per_class)]
    clock = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_render_files, [jobs[w::workers] for w in range(workers)],
                      [frames] * workers, [width] * workers, [height] * workers))
    render_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    counts = {"train": round(UCF101_TRAIN * scale), "test": round(UCF101_TEST * scale)}
    links = copies = 0
    for split, count in counts.items():
        lines = []
        for k in range(count):
            c = k % UCF101_CLASSES
            rel = f"{classes[c]}/{split}_{k:05d}.avi"
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            source = sources / f"{c:03d}_{(k // UCF101_CLASSES) % per_class}.avi"
            try:
                os.link(source, target)
                links += 1
            except OSError:
                shutil.copyfile(source, target)
                copies += 1
            lines.append(rel)
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return {"distinct": len(jobs), "render_s": render_seconds,
            "link_s": time.perf_counter() - clock, "links": links, "copies": copies,
            "bytes_distinct": sum(p.stat().st_size for p in sources.iterdir()), **counts}


# -- 2. the chain ---------------------------------------------------------------------------
def chain_commands(data: Path, ws: Path, epochs: int, short_side: int, clip_length: int,
                   stride: int, crop: int, batch: int) -> list[tuple[str, list[str]]]:
    where = ["--workspace", str(ws), "--dataset", "folder", "--name", NAME]
    run = ["--run", str(ws / NAME / "runs" / RUN)]
    quiet = ["--quiet", "--json"]
    pretrain_sets = {"clip_length": clip_length, "stride": stride, "crop_size": crop,
                     "projection_hidden": 64, "projection_dim": 32, "eval_every": 0}
    return [
        ("extract-frames", ["extract-frames", *where, "--root", str(data), "--workers", "2",
                            "--short-side", str(short_side), *quiet]),
        ("compute-flow", ["compute-flow", *where, "--workers", "2", *quiet]),
        ("pretrain", ["pretrain", *where, "--run-name", RUN, "--arch", "r3d_tiny",
                      "--epochs", str(epochs), "--batch-size", str(batch), "--device", "cpu",
                      "--workers", "2",
                      *[f"--set=pretrain.{k}={v}" for k, v in pretrain_sets.items()], *quiet]),
        ("retrieve", ["retrieve", *where, *run, "--k", "1,5", "--clips", "1", "--device",
                      "cpu", *quiet]),
        ("linear-probe (windows)", ["linear-probe", *where, *run, "--epochs", "1",
                                    "--windows", "1", "--crops", "1", "--device", "cpu",
                                    *quiet]),
        ("finetune", ["finetune", *where, *run, "--epochs", "1", "--windows", "1", "--crops",
                      "1", "--device", "cpu", *quiet]),
        ("linear-probe (cached)", ["linear-probe", *where, *run, "--protocol", "cached",
                                   "--epochs", "1", "--windows", "1", "--crops", "1",
                                   "--device", "cpu", *quiet]),
    ]


NOTE_KEYS = ("num_videos", "num_failed", "num_images", "bytes", "epochs", "loss", "num_clusters",
             "nmi", "r1", "r5", "num_queries", "num_gallery", "num_train", "num_test", "top1",
             "top5")


def short_summary(summary: dict) -> str:
    """The summary's counts and results worth a table cell, and the stage's own seconds."""
    keep = [f"{k} {summary[k]:.3g}" if isinstance(summary[k], float) else f"{k} {summary[k]}"
            for k in NOTE_KEYS if summary.get(k) is not None]
    if "seconds" in summary:
        keep.append(f"stage's own seconds {summary['seconds']:.1f}")
    return ", ".join(keep)


def clustering_rounds(ws: Path) -> list[dict]:
    path = ws / NAME / "runs" / RUN / "metrics.jsonl"
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if "cluster_seconds" in r]


# -- 3. a Kinetics-size clustering round ----------------------------------------------------
def kinetics_child(n: int, dim: int, classes: int, kind: str, nn: str) -> None:
    """In this process: features, FINCH as a pretraining round calls it, then the quality of
    every partition and of the chosen one; prints the timings as JSON."""
    from stages.clustering.metrics import cluster_quality
    from stages.clustering.partitions import cluster_features

    rng = np.random.default_rng(0)
    truth = rng.integers(classes, size=n)
    if kind == "clustered":
        centres = rng.normal(size=(classes, dim)).astype(np.float32)
        features = centres[truth] + 1.5 * rng.normal(size=(n, dim)).astype(np.float32)
    else:
        features = rng.normal(size=(n, dim)).astype(np.float32)
    clock = time.perf_counter()
    clustering = cluster_features(features, "finch", "finest", None, nn, 7, section="pretrain")
    finch_seconds = time.perf_counter() - clock
    per_partition = []
    for partition in [*clustering.partitions, clustering.chosen]:
        clock = time.perf_counter()
        quality = cluster_quality(truth, partition)
        per_partition.append({"clusters": int(partition.max()) + 1,
                              "seconds": time.perf_counter() - clock, "nmi": quality.nmi})
    print(json.dumps({"finch_s": finch_seconds, "num_clusters": clustering.num_clusters,
                      "quality_s": sum(p["seconds"] for p in per_partition),
                      "per_partition": per_partition}))


def kinetics(n: int, dim: int, classes: int, kinds: list[str], nn: str, interval: float
             ) -> list[dict]:
    results = []
    for kind in kinds:
        done = measure([sys.executable, __file__, "--kinetics-child", kind, "--kinetics-n",
                        str(n), "--kinetics-dim", str(dim), "--kinetics-classes", str(classes),
                        "--kinetics-nn", nn], interval)
        if done.returncode != 0:
            print(f"kinetics {kind}: failed ({done.returncode}):\n{done.stderr[-3000:]}")
            continue
        report = json.loads(done.stdout.strip().splitlines()[-1])
        report.update(kind=kind, wall=done.wall, peak_mib=done.max_process_mib,
                      foreign_cpu=done.foreign_cpu)
        results.append(report)
    return results


def metrics_commit() -> str:
    done = subprocess.run(["git", "log", "--format=%h %s", "-1", "--",
                           "stages/clustering/metrics.py"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    return done.stdout.strip() or "?"


def partition_seconds(report: dict) -> list[float]:
    return [p["seconds"] for p in report["per_partition"]]


# -- the report -----------------------------------------------------------------------------
def mib(value: float) -> str:
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the data and workspace (default: a temporary folder, "
                        "deleted at the end unless --keep)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of UCF101's video counts (the class count stays 101)")
    parser.add_argument("--distinct", type=int, default=404,
                        help="videos actually encoded (a multiple of 101); the rest are links")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--height", type=int, default=36)
    parser.add_argument("--short-side", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--clip-length", type=int, default=4)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sample-every", type=float, default=5.0,
                        help="seconds between samples of the process tree's PSS")
    parser.add_argument("--no-cached-probe", dest="cached_probe", action="store_false",
                        help="skip the linear probe's cached protocol (5 clips per train video)")
    parser.add_argument("--kinetics-n", type=int, default=240_000)
    parser.add_argument("--kinetics-dim", type=int, default=128)
    parser.add_argument("--kinetics-classes", type=int, default=400)
    parser.add_argument("--kinetics-features", nargs="+", default=["clustered"],
                        choices=["clustered", "random"])
    parser.add_argument("--kinetics-nn", default="auto",
                        help="first-neighbour search (pretrain.cluster_nn; auto: HNSW here)")
    parser.add_argument("--kinetics-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kinetics_child:
        kinetics_child(args.kinetics_n, args.kinetics_dim, args.kinetics_classes,
                       args.kinetics_child, args.kinetics_nn)
        return

    print_machine(machine_info())
    work = args.work or Path(tempfile.mkdtemp(prefix="slic-bench-rehearsal-"))
    data, ws = work / "data", work / "ws"
    print(f"work folder: {work}", flush=True)
    rows: list[list[object]] = []
    if "generate" in args.parts:
        made = build_dataset(data, args.scale, args.distinct, args.frames, args.width,
                             args.height, 2)
        print(f"dataset: {made}", flush=True)
        rows.append(["generate the dataset (in-process, not a slic command)",
                     f"{made['render_s'] + made['link_s']:.1f}", "-",
                     f"{made['distinct']} distinct videos encoded ({args.frames} frames "
                     f"{args.width}x{args.height}, mpeg4 .avi, "
                     f"{made['bytes_distinct'] / made['distinct'] / 1024:.0f} KB each) in "
                     f"{made['render_s']:.1f} s on 2 processes; {made['train']} train + "
                     f"{made['test']} test names hard-linked to them in "
                     f"{made['link_s']:.1f} s ({made['copies']} copies)"])
    if "chain" in args.parts:
        # A fresh workspace: a run folder left from an earlier rehearsal would make pretrain
        # stop (it asks for --resume or --force) and the evaluations reuse the old model.
        shutil.rmtree(ws, ignore_errors=True)
        commands = chain_commands(data, ws, args.epochs, args.short_side, args.clip_length,
                                  args.stride, args.crop, args.batch_size)
        if not args.cached_probe:
            commands = [c for c in commands if c[0] != "linear-probe (cached)"]
        summaries: dict[str, dict] = {}
        for label, arguments in commands:
            print(f"$ slic {' '.join(arguments)}", flush=True)
            done = measure(slic_command() + arguments, args.sample_every)
            if done.returncode != 0:
                error = "\n".join(done.stderr.strip().splitlines()[-15:])
                print(f"  FAILED (exit {done.returncode}) after {done.wall:.1f} s:\n{error}",
                      flush=True)
                note = f"failed, exit {done.returncode}: {error.splitlines()[-1:]}"
            else:
                print(f"  {done.wall:.1f} s, largest process {mib(done.max_process_mib)}, "
                      f"tree PSS {mib(done.tree_pss_mib)}, others' CPU "
                      f"{done.foreign_cpu:.0f} s\n  {json.dumps(done.summary)}", flush=True)
                note = short_summary(done.summary)
            summaries[label] = {"wall": done.wall, "max_process_mib": done.max_process_mib,
                                "tree_pss_mib": done.tree_pss_mib,
                                "returncode": done.returncode, "summary": done.summary,
                                "stderr_tail": done.stderr[-3000:]}
            rows.append([f"`slic {label}`", f"{done.wall:.1f}", mib(done.max_process_mib),
                         mib(done.tree_pss_mib), f"{done.foreign_cpu:.0f}", note])
        (work / "summaries.json").write_text(json.dumps(summaries, indent=1))
    rounds = clustering_rounds(ws)
    if rows:
        print()
        print(table(["part", "wall s", "peak RSS (largest process)",
                     "peak PSS (process tree, sampled)", "others' CPU s", "notes"],
                    [r if len(r) == 6 else [r[0], r[1], r[2], "-", "-", r[3]] for r in rows]))
    if rounds:
        print("\nclustering rounds of pretrain (metrics.jsonl, in-process timings):")
        keys = ["embed_seconds", "cluster_seconds", "quality_seconds", "broadcast_seconds"]
        print(table(["epoch", "embed s", "FINCH s", "quality s", "broadcast s", "clusters",
                     "NMI"],
                    [[r["epoch"], *[f"{r.get(k, float('nan')):.2f}" for k in keys],
                      r.get("num_clusters"), f"{r.get('nmi', float('nan')):.3f}"]
                     for r in rounds]))
    if "kinetics" in args.parts:
        print(f"\nKinetics-size round: N={args.kinetics_n} D={args.kinetics_dim} "
              f"classes={args.kinetics_classes}; metrics.py at {metrics_commit()}", flush=True)
        found = kinetics(args.kinetics_n, args.kinetics_dim, args.kinetics_classes,
                         args.kinetics_features, args.kinetics_nn, args.sample_every)
        for report in found:
            print(json.dumps(report))
        rows_k = [[r["kind"], f"{r['finch_s']:.1f}", "/".join(map(str, r["num_clusters"])),
                   f"{r['quality_s']:.1f} ({len(r['per_partition'])} calls: "
                   f"{', '.join(f'{p:.2f}' for p in partition_seconds(r))})",
                   f"{r['wall']:.1f}", mib(r["peak_mib"]), f"{r['foreign_cpu']:.0f}"]
                  for r in found]
        print(table(["features", "FINCH s (measured)", "clusters per partition",
                     "quality s (measured)", "child process wall s", "peak RSS",
                     "others' CPU s"], rows_k))
        train_videos = round(UCF101_TRAIN * args.scale)
        for r in rounds:
            embed = r["embed_seconds"]
            print(f"embedding of round {r['epoch']} (extrapolated, linear in videos): "
                  f"{embed:.1f} s for {train_videos} videos -> "
                  f"{embed / train_videos * 1000:.2f} ms/video -> "
                  f"{embed / train_videos * args.kinetics_n:.0f} s for {args.kinetics_n}")
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
