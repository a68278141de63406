"""Benchmark `slic compute-flow` against a bare OpenCV DIS loop on the same frames.

For each frames.h5 (made here with `slic extract-frames` from the real clips and a synthetic set,
or given with --frames NAME=PATH):
  * bare: all frames pre-decoded to gray uint8 in memory (untimed), then a timed loop of
    cv2.DISOpticalFlow_create(PRESET_MEDIUM).calc(prev, cur, None) over every consecutive pair,
    cv2.setNumThreads(1); in 1 process, and in 2 forked processes that each take half of the
    videos (balanced by pair count), timed from a common start signal to the last finish;
  * slic: `slic compute-flow --workers 1` and `--workers 2` (subprocess wall time, start-up
    included; pairs = num_images of the summary JSON), with the flow computed on the stored
    frames (`compute_flow.reference_short_side: null`), the pixels the bare loop works on:
    this measures slic's overhead; what the default reference-size flow costs is
    bench_flow_contrast.py's,
  run in rotating order, --runs times; medians are reported with ratios slic/bare.
Also: bare Farneback (slic's parameters) and DIS on a subset of pairs, TV-L1 in a separate
python that has opencv-contrib-python (--tvl1-python), and a breakdown of where the time of
`compute-flow --workers 1` goes (the library's own functions wrapped with timers, in-process).

Usage (from the repository root):
    python benchmarks/bench_compute_flow.py [--real-clips DIR] [--synthetic DIR]
        [--frames NAME=frames.h5 ...] [--runs 3] [--tvl1-python /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ForeignCpu,
    default_real_clips,
    ffmpeg_binary,
    fmt_runs,
    machine_info,
    make_synthetic,
    median,
    prepare_folder_input,
    print_machine,
    run_slic,
    table,
)

from stages.io.artifacts import open_artifact, read_encoded_images, read_video_table  # noqa: E402
from stages.io.images import decode_gray  # noqa: E402

# Filled before forking, read by the forked bare workers.
_VIDEOS: list[list[np.ndarray]] = []


def load_gray(frames_h5: Path) -> list[list[np.ndarray]]:
    with open_artifact(frames_h5, "frames") as h5:
        t = read_video_table(h5)
        codec = str(h5["images"].attrs["codec"])
        videos = []
        for i in range(len(t)):
            h, w = int(t.columns["height"][i]), int(t.columns["width"][i])
            encoded = read_encoded_images(h5, "images", int(t.columns["first_image"][i]),
                                          int(t.columns["num_images"][i]))
            videos.append([decode_gray(e, codec, h, w) for e in encoded])
    return videos


def dis_loop(videos: list[list[np.ndarray]]) -> int:
    cv2.setNumThreads(1)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    pairs = 0
    for frames in videos:
        for previous, current in zip(frames[:-1], frames[1:]):
            dis.calc(previous, current, None)
            pairs += 1
    return pairs


def split_videos(videos: list[list[np.ndarray]], parts: int) -> list[list[int]]:
    """Video indices in `parts` groups of about equal pair count (largest first, greedy)."""
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for index in sorted(range(len(videos)), key=lambda i: -len(videos[i])):
        target = loads.index(min(loads))
        groups[target].append(index)
        loads[target] += max(len(videos[index]) - 1, 0)
    return groups


def _bare_worker(indices: list[int], go, done) -> None:
    cv2.setNumThreads(1)
    go.wait()
    pairs = dis_loop([_VIDEOS[i] for i in indices])
    done.put(pairs)


def bare_parallel(videos: list[list[np.ndarray]], workers: int) -> tuple[float, int]:
    """Wall time of `workers` forked processes each running the DIS loop on its share."""
    global _VIDEOS
    _VIDEOS = videos
    context = multiprocessing.get_context("fork")
    go, done = context.Event(), context.Queue()
    processes = [context.Process(target=_bare_worker, args=(group, go, done))
                 for group in split_videos(videos, workers)]
    for process in processes:
        process.start()
    time.sleep(0.2)  # let every child reach go.wait()
    started = time.perf_counter()
    go.set()
    pairs = sum(done.get() for _ in processes)
    wall = time.perf_counter() - started
    for process in processes:
        process.join()
    return wall, pairs


def slic_flow(frames_h5: Path, workspace: Path, workers: int, env: dict) -> tuple[float, dict]:
    return run_slic(["compute-flow", "--dataset", "folder", "--workspace", str(workspace),
                     "--frames", str(frames_h5), "--out", str(workspace / "flow.h5"),
                     "--workers", str(workers), "--force", "--quiet", "--json",
                     "--set", "compute_flow.reference_short_side=null"], env=env)


def subset_pairs(videos: list[list[np.ndarray]], count: int) -> list[tuple[np.ndarray, ...]]:
    """About `count` consecutive pairs spread over all videos."""
    everything = [(f[i], f[i + 1]) for f in videos for i in range(len(f) - 1)]
    step = max(1, len(everything) // count)
    return everything[::step][:count]


def tvl1_pairs(videos: list[list[np.ndarray]], count: int) -> list[tuple[np.ndarray, ...]]:
    """About `count` pairs spread over the videos of the most common frame size."""
    shapes = [v[0].shape for v in videos if len(v) > 1]
    common = max(set(shapes), key=shapes.count)
    return subset_pairs([v for v in videos if len(v) > 1 and v[0].shape == common], count)


def rate(fn, pairs, repeats: int) -> tuple[float, list[float]]:
    fn(*pairs[0])  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for previous, current in pairs:
            fn(previous, current)
        times.append(time.perf_counter() - started)
    return len(pairs) / median(times), times


TVL1_SCRIPT = r"""
import json, sys, time
import numpy as np, cv2
cv2.setNumThreads(1)
data = np.load(sys.argv[1])
repeats = int(sys.argv[2])
out = {"opencv": cv2.__version__, "has_optflow": hasattr(cv2, "optflow"),
       "pairs": int(data.shape[0])}
def timed(fn):
    fn(data[0, 0], data[0, 1])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for a, b in data:
            fn(a, b)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], times
dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
out["dis_median_s"], out["dis_runs"] = timed(lambda a, b: dis.calc(a, b, None))
if out["has_optflow"]:
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    out["tvl1_median_s"], out["tvl1_runs"] = timed(lambda a, b: tvl1.calc(a, b, None))
print(json.dumps(out))
"""


def run_tvl1(python: str, pairs, work: Path, repeats: int) -> dict:
    frames = np.stack([np.stack(p) for p in pairs])  # all pairs of one video size
    path = work / "tvl1_pairs.npy"
    np.save(path, frames)
    script = work / "tvl1_bench.py"
    script.write_text(TVL1_SCRIPT)
    done = subprocess.run([python, str(script), str(path), str(repeats)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def makespan(durations: list[float], workers: int) -> float:
    """Finish time of greedy dispatch (each free worker takes the next job), like a Pool."""
    free = [0.0] * workers
    for duration in durations:
        slot = free.index(min(free))
        free[slot] += duration
    return max(free)


def breakdown(frames_h5: Path, workspace: Path) -> dict[str, float]:
    """Run compute-flow's library code in-process (1 worker) with its steps wrapped in timers."""
    import stages.compute_flow as cf
    import stages.io.staging as staging
    from stages.runtime.context import RunContext
    from stages.runtime.sections import DataConfig, WorkspaceConfig

    totals: dict[str, float] = defaultdict(float)
    durations: list[float] = []  # per video, in processing (= dispatch) order

    def timed(name, fn):
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                totals[name] += time.perf_counter() - started
        return wrapper

    saved = {n: getattr(cf, n) for n in ("read_encoded_images", "decode_gray", "quantise_flow",
                                         "encode_image", "pack_images", "_flow_function",
                                         "_merge", "flow_video")}
    saved_write, saved_frames_file = staging.StagingArea.write, cf._frames_file
    original_flow_function = saved["_flow_function"]
    try:
        cf.read_encoded_images = timed("HDF5 read (read_encoded_images)",
                                       saved["read_encoded_images"])
        cf.decode_gray = timed("JPEG decode (decode_gray)", saved["decode_gray"])
        cf.quantise_flow = timed("quantise (quantise_flow)", saved["quantise_flow"])
        cf.encode_image = timed("JPEG encode u+v (encode_image)", saved["encode_image"])
        cf.pack_images = timed("pack_images", saved["pack_images"])
        cf._flow_function = lambda *how: timed("DIS calc", original_flow_function(*how))
        cf._merge = timed("merge into flow.h5 (_merge)", saved["_merge"])
        timed_flow_video = timed("flow_video total", saved["flow_video"])

        def flow_video(payload):
            started = time.perf_counter()
            try:
                return timed_flow_video(payload)
            finally:
                durations.append(time.perf_counter() - started)

        cf.flow_video = flow_video
        cf._frames_file = timed("open frames.h5 (h5py.File)", saved_frames_file)
        staging.StagingArea.write = timed("staging write (.npz per video)", saved_write)
        cf._worker_state.clear()
        settings = cf.ComputeFlowConfig(workers=1, reference_short_side=None)
        started = time.perf_counter()
        result = cf.run(settings, DataConfig(dataset="folder"), WorkspaceConfig(str(workspace)),
                        context=RunContext(force=True), frames=frames_h5,
                        out=workspace / "flow_bd.h5")
        totals["run() total"] = time.perf_counter() - started
        totals["pairs"] = result.num_images
        totals["makespan 2 workers, in slic's dispatch order"] = makespan(durations, 2)
        totals["makespan 2 workers, longest first"] = makespan(sorted(durations)[::-1], 2)
        totals["perfect split over 2 workers"] = sum(durations) / 2
    finally:
        for name, value in saved.items():
            setattr(cf, name, value)
        cf._frames_file = saved_frames_file
        staging.StagingArea.write = saved_write
        cf._worker_state.clear()
    return dict(totals)


def bench_frames(name: str, frames_h5: Path, work: Path, args, env: dict) -> None:
    workspace = work / f"flow_{name}"
    workspace.mkdir(parents=True, exist_ok=True)
    print(f"\n## {name}: {frames_h5}", flush=True)
    videos = load_gray(frames_h5)
    total_pairs = sum(max(len(v) - 1, 0) for v in videos)
    print(f"{len(videos)} videos, {sum(len(v) for v in videos)} frames, {total_pairs} pairs, "
          f"frame sizes {sorted({v[0].shape for v in videos if v})}", flush=True)

    walls: dict[str, list[float]] = defaultdict(list)
    inner: dict[str, list[float]] = defaultdict(list)
    slic_pairs = {}

    def bare1():
        started = time.perf_counter()
        pairs = dis_loop(videos)
        walls["bare 1 proc"].append(time.perf_counter() - started)
        assert pairs == total_pairs

    def bare2():
        wall, pairs = bare_parallel(videos, 2)
        walls["bare 2 procs"].append(wall)
        assert pairs == total_pairs

    def slic(workers):
        def go():
            wall, summary = slic_flow(frames_h5, workspace, workers, env)
            walls[f"slic --workers {workers}"].append(wall)
            inner[f"slic --workers {workers}"].append(summary["seconds"])
            slic_pairs[workers] = summary["num_images"]
        return go

    steps = [bare1, slic(1), bare2, slic(2)]
    foreign: dict[str, list[float]] = defaultdict(list)  # CPU s used by other processes
    for run in range(args.runs):
        shift = run % len(steps)
        for step in steps[shift:] + steps[:shift]:
            before = {k: len(v) for k, v in walls.items()}
            with ForeignCpu() as other:
                step()
            for k, v in walls.items():
                if len(v) > before.get(k, 0):
                    foreign[k].append(other.seconds)
        print(f"  run {run + 1}: " + ", ".join(
            f"{k} {v[-1]:.2f}s (others {foreign[k][-1]:.2f} CPU s)" for k, v in walls.items()),
            flush=True)

    for workers, pairs in slic_pairs.items():
        if pairs != total_pairs:
            print(f"WARNING: slic --workers {workers} reports {pairs} pairs, bare has "
                  f"{total_pairs}")
    rates = {k: total_pairs / median(v) for k, v in walls.items()}
    rows = [[k, fmt_runs(v), f"{median(v):.2f}", f"{rates[k]:.0f}",
             f"{median(inner[k]):.2f}" if k in inner else "-",
             f"{total_pairs / median(inner[k]):.0f}" if k in inner else "-"]
            for k, v in walls.items()]
    for row, key in zip(rows, walls):
        row.append(fmt_runs(foreign[key]))
    print(table(["method", "wall runs (s)", "median wall (s)", "pairs/s (wall)",
                 "slic summary seconds", "pairs/s (summary seconds)",
                 "CPU s of other processes per run"], rows))
    for workers, bare in ((1, "bare 1 proc"), (2, "bare 2 procs")):
        key = f"slic --workers {workers}"
        print(f"ratio slic/bare at {workers} worker(s): wall {rates[key] / rates[bare]:.2f}, "
              f"summary seconds {median(walls[bare]) / median(inner[key]):.2f}")
    print(f"scaling 1 -> 2: bare {rates['bare 2 procs'] / rates['bare 1 proc']:.2f}x, slic "
          f"{rates['slic --workers 2'] / rates['slic --workers 1']:.2f}x")

    if args.other_pairs:
        pairs = subset_pairs(videos, args.other_pairs)
        cv2.setNumThreads(1)
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis_rate, dis_runs = rate(lambda a, b: dis.calc(a, b, None), pairs, args.runs)
        fb_rate, fb_runs = rate(
            lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0),
            pairs, args.runs)
        rows = [["DIS medium", len(pairs), fmt_runs(dis_runs), f"{dis_rate:.0f}", "1.00"],
                ["Farneback", len(pairs), fmt_runs(fb_runs), f"{fb_rate:.0f}",
                 f"{fb_rate / dis_rate:.3f}"]]
        if args.tvl1_python:
            same = tvl1_pairs(videos, args.tvl1_pairs)
            shape = same[0][0].shape
            result = run_tvl1(args.tvl1_python, same, work, args.runs)
            if "error" in result:
                print(f"TV-L1 run failed: {result['error']}")
            else:
                print(f"TV-L1 python: opencv-contrib {result['opencv']}, cv2.optflow exists: "
                      f"{result['has_optflow']}")
                n = result["pairs"]
                venv_dis = n / result["dis_median_s"]
                rows.append([f"DIS medium (TV-L1 venv, {shape[1]}x{shape[0]})", n,
                             fmt_runs(result["dis_runs"]), f"{venv_dis:.0f}", "1.00 (venv)"])
                if result["has_optflow"]:
                    tv_rate = n / result["tvl1_median_s"]
                    rows.append([f"TV-L1 (default params, {shape[1]}x{shape[0]})", n,
                                 fmt_runs(result["tvl1_runs"]), f"{tv_rate:.1f}",
                                 f"{tv_rate / venv_dis:.3f} (vs venv DIS)"])
        print(f"\nbare single-thread flow methods, subset of pairs (median of {args.runs})")
        print(table(["method", "pairs", "runs (s)", "pairs/s", "rate vs DIS"], rows))

    if args.breakdown_runs:
        results = []
        for _ in range(args.breakdown_runs):
            started = time.perf_counter()
            dis_loop(videos)
            bare_here = time.perf_counter() - started
            results.append(breakdown(frames_h5, workspace))
            results[-1]["(bare 1 proc DIS loop, run just before)"] = bare_here
        schedule = [k for k in results[0] if "worker" in k]
        keys = [k for k in results[0] if k != "pairs" and k not in schedule]
        pairs = results[0]["pairs"]
        total = median([r["run() total"] for r in results])
        rows = []
        for key in sorted(keys, key=lambda k: -median([r[k] for r in results])):
            value = median([r[key] for r in results])
            rows.append([key, f"{value:.3f}", f"{value / pairs * 1e6:.0f}",
                         f"{100 * value / total:.1f}%"])
        print(f"\nwhere compute-flow --workers 1 spends its time (in-process, median of "
              f"{args.breakdown_runs}; 'flow_video total' includes the rows nested in it)")
        print(table(["step", "seconds", "µs per pair", "share of run()"], rows))
        print("\nper-video flow_video times scheduled on 2 workers (simulated, seconds): "
              + ", ".join(f"{k} {median([r[k] for r in results]):.2f}" for k in schedule))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", action="append", default=[], metavar="NAME=PATH",
                        help="an existing frames.h5 (repeatable); when given, nothing is made")
    parser.add_argument("--real-clips", type=Path, default=default_real_clips(),
                        help="videos to make frames.h5 from (default ../shared/data/real-clips)")
    parser.add_argument("--synthetic", type=Path, default=None,
                        help="a synthetic set (default: made with `slic make-dataset synthetic`)")
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--other-pairs", type=int, default=300,
                        help="pairs for the Farneback / DIS subset comparison (0: skip)")
    parser.add_argument("--tvl1-python", default=None,
                        help="python of a venv with opencv-contrib-python, for TV-L1")
    parser.add_argument("--tvl1-pairs", type=int, default=50)
    parser.add_argument("--breakdown-runs", type=int, default=3,
                        help="in-process timed breakdowns of compute-flow (0: skip)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    env = dict(os.environ, SLIC_FFMPEG=ffmpeg_binary())
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_flow_"))
    work.mkdir(parents=True, exist_ok=True)
    print("# bench_compute_flow")
    print("command: " + " ".join([Path(sys.executable).name] + sys.argv))
    print_machine(machine_info())
    try:
        inputs = []
        for item in args.frames:
            name, _, path = item.partition("=")
            inputs.append((name, Path(path).resolve()))
        if not args.frames:
            roots = []
            if not args.no_real:
                roots.append(("real-clips", prepare_folder_input(args.real_clips, work / "real")))
            if not args.no_synthetic:
                syn = args.synthetic or make_synthetic(work / "synthetic")
                roots.append(("synthetic", prepare_folder_input(syn, work / "synthetic_links")))
            for name, root in roots:
                workspace = work / f"frames_{name}"
                run_slic(["extract-frames", "--dataset", "folder", "--root", str(root),
                          "--workspace", str(workspace), "--force", "--quiet", "--json"], env=env)
                inputs.append((name, workspace / "folder" / "frames.h5"))
        for name, path in inputs:
            bench_frames(name, path, work, args, env)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
