"""Benchmark slic's PyTorch TV-L1 (stages/flow/tvl1.py) against OpenCV's DualTVL1.

(a) parity: consecutive frame pairs of the real clips (MANIFEST.tsv), decoded with OpenCV,
    gray, resized with INTER_AREA to what slic stores (short side 128, even sizes; the UCF101
    clips also at their own 320x240). OpenCV's flows (default parameters, 1 thread) come from a
    separate python that has opencv-contrib-python (--ref-python), run as a subprocess; they are
    saved as .npy in --work and loaded from there on later runs. Per clip: the average end-point
    error (EPE) of ours against OpenCV's, EPE / mean |flow| of OpenCV's, and the share of stored
    flow values (u and v, quantised to uint8 by slic's quantise_flow with bound 20) that differ
    by more than one level; beside it, as a floor, the same share between OpenCV and itself on
    the frames plus +-1e-4 grey level of noise; then where the disagreements lie (near the
    edge, at motion boundaries).
(b) speed, same run, same pairs, --threads threads each: ours at batch sizes 1, 4, 16 against
    OpenCV's TV-L1 (in --ref-python, timed inside that process) and DIS medium (this python),
    at 320x240 and at short side 128; --runs rounds in rotating order, medians, ratios, and
    the CPU seconds other processes used during each run.

Usage (from the repository root):
    python -m venv /tmp/tvl1-ref-venv
    /tmp/tvl1-ref-venv/bin/pip install opencv-contrib-python numpy
    python benchmarks/bench_tvl1.py [--ref-python /tmp/tvl1-ref-venv/bin/python] [--pairs 8]
        [--runs 3] [--threads 2] [--no-parity] [--no-speed] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    ForeignCpu,
    default_real_clips,
    fmt_runs,
    machine_info,
    median,
    print_machine,
    table,
)
from stages.flow.methods import quantise_flow  # noqa: E402
from stages.flow.tvl1 import TVL1Params, tvl1_flow  # noqa: E402

BOUND = 20.0
SHORT_SIDE = 128
BATCH_SIZES = (1, 4, 16)
# Grey levels of noise for OpenCV against itself: the floor below which no reimplementation
# can be expected to agree with OpenCV (its float rounding moves flows about as much).
PERTURBATION = 1e-4
BORDER = 4  # px: how near the edge a disagreement counts as "at the border"

# Run by --ref-python. "flow": OpenCV's flows of the pairs into an .npy; "perturbed": the same
# of the pairs plus uniform noise of +-PERTURBATION grey levels (as float 0..1 images);
# "time": seconds of a loop over the pairs after one warm-up call.
REFERENCE_SCRIPT = r"""
import json, sys, time
import cv2, numpy as np
mode, pairs_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
cv2.setNumThreads(threads)
pairs = np.load(pairs_path)
tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
if mode == "perturbed":
    noise = np.random.default_rng(0).uniform(-1, 1, pairs.shape) * float(sys.argv[5])
    pairs = ((pairs + noise) / 255).astype(np.float32)
if mode in ("flow", "perturbed"):
    np.save(sys.argv[4], np.stack([tvl1.calc(a, b, None) for a, b in pairs]))
    print(json.dumps({"opencv": cv2.__version__}))
else:
    tvl1.calc(pairs[0, 0], pairs[0, 1], None)
    started = time.perf_counter()
    for a, b in pairs:
        tvl1.calc(a, b, None)
    print(json.dumps({"opencv": cv2.__version__, "seconds": time.perf_counter() - started}))
"""


def clips(root: Path) -> list[dict[str, str]]:
    """MANIFEST.tsv rows, each with its `path`."""
    with open(root / "MANIFEST.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:
        row["path"] = str(root / row["dataset"] / row["class"] / row["file"])
    return rows


def short_side_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(width, height) with the short side `short`, the aspect kept, even (ffmpeg's -2)."""
    if width > height:
        return 2 * round(width * short / height / 2), short
    return short, 2 * round(height * short / width / 2)


def frame_pairs(path: str, size: tuple[int, int] | None, count: int) -> np.ndarray:
    """(count, 2, H, W) uint8 gray consecutive pairs spread evenly over the clip."""
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        frames.append(gray if size is None else cv2.resize(gray, size,
                                                           interpolation=cv2.INTER_AREA))
    capture.release()
    starts = np.linspace(0, len(frames) - 2, count).round().astype(int)
    return np.stack([np.stack(frames[i:i + 2]) for i in starts])


def reference(args, mode: str, pairs_path: Path, threads: int, out: Path | None = None) -> dict:
    """Run REFERENCE_SCRIPT in --ref-python; returns its JSON line."""
    script = args.work / "tvl1_reference.py"
    script.write_text(REFERENCE_SCRIPT)
    command = [args.ref_python, str(script), mode, str(pairs_path), str(threads)]
    if out:
        command += [str(out), str(PERTURBATION)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the OpenCV reference failed ({args.ref_python}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours(pairs: np.ndarray, batch_size: int) -> np.ndarray:
    """(N, 2, H, W) uint8 -> (N, H, W, 2) float32 flows."""
    frames = torch.from_numpy(pairs)
    flows = [tvl1_flow(chunk[:, 0], chunk[:, 1], TVL1Params())
             for chunk in frames.split(batch_size)]
    return torch.cat(flows).permute(0, 2, 3, 1).numpy()


def parity_sets(args) -> list[tuple[str, str, np.ndarray]]:
    """(clip name, size label, pairs) for every clip at short side 128, UCF101 also 320x240."""
    sets = []
    rows = clips(args.real_clips)
    classes = [(row["dataset"], row["class"]) for row in rows]
    for row in rows:
        name = f"{row['dataset']}/{row['class']}"
        if classes.count((row["dataset"], row["class"])) > 1:
            name += f" ({Path(row['file']).stem[:18]})"
        width, height = int(row["width"]), int(row["height"])
        sizes = [short_side_size(width, height, SHORT_SIDE)]
        if row["dataset"] == "UCF101":
            sizes.append((width, height))
        for size in sizes:
            label = f"{size[0]}x{size[1]}"
            stem = f"{row['class']}_{Path(row['file']).stem[:24]}_{label}_{args.pairs}"
            path = args.work / f"pairs_{stem}.npy"
            if not path.exists():
                np.save(path, frame_pairs(row["path"], size, args.pairs))
            sets.append((name, label, path))
    return sets


def compare(flow: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """EPE, mean |ref|, the share of quantised u, v values more than one level apart, and
    where those lie: how many within BORDER px of the edge, how many where the reference flow
    changes by more than 0.5 px a pixel (motion boundaries)."""
    levels = np.abs(np.stack([quantise_flow(a, BOUND) for a in flow]).astype(int)
                    - np.stack([quantise_flow(b, BOUND) for b in ref]).astype(int))
    apart = (levels > 1).any(-1)
    border = np.ones(apart.shape[1:], bool)
    border[BORDER:-BORDER, BORDER:-BORDER] = False
    steep = np.zeros(apart.shape, bool)
    steep[:, :-1] |= np.abs(np.diff(ref, axis=1)).max(-1) > 0.5
    steep[:, :, :-1] |= np.abs(np.diff(ref, axis=2)).max(-1) > 0.5
    return {"epe": float(np.linalg.norm(flow - ref, axis=-1).mean()),
            "magnitude": float(np.linalg.norm(ref, axis=-1).mean()),
            "over_one": float((levels > 1).mean()), "apart": int(apart.sum()),
            "at_border": int((apart & border).sum()), "at_steep": int((apart & steep).sum()),
            "pixels": apart.size, "border_pixels": int(border.sum()) * len(apart),
            "steep_pixels": int(steep.sum())}


def parity(args) -> None:
    rows, pooled = [], []
    for name, label, path in parity_sets(args):
        flows = {}
        for mode in ("flow", "perturbed"):
            out = path.with_name(path.name.replace("pairs_", f"ref_{mode}_"))
            if not out.exists() or args.recompute:
                reference(args, mode, path, 1, out)
            flows[mode] = np.load(out)
        pairs = np.load(path)
        scores = compare(ours(pairs, 16), flows["flow"])
        scores["floor"] = compare(flows["perturbed"], flows["flow"])["over_one"]
        pooled.append(scores)
        rows.append([name, label, len(pairs), *cells(scores)])
        print(f"  {name} {label}: " + ", ".join(rows[-1][3:]), flush=True)
    mean = {key: float(np.mean([s[key] for s in pooled])) for key in pooled[0]}
    rows.append(["all (mean of clips)", "", sum(r[2] for r in rows), *cells(mean)])
    print(f"\nparity against OpenCV DualTVL1 (defaults), {args.pairs} pairs a clip")
    print(table(["clip", "size", "pairs", "EPE px", "mean |flow| px", "EPE / mean |flow|",
                 "quantised values > 1 level apart",
                 f"same, OpenCV vs itself on input +-{PERTURBATION:g} grey level"], rows))
    total = {key: sum(s[key] for s in pooled) for key in ("apart", "at_border", "at_steep",
                                                          "pixels", "border_pixels",
                                                          "steep_pixels")}
    print(f"\npixels with u or v > 1 level apart: {total['apart']} of {total['pixels']}; "
          f"{100 * total['at_border'] / max(total['apart'], 1):.1f}% of them within {BORDER} px "
          f"of the edge ({100 * total['border_pixels'] / total['pixels']:.1f}% of all pixels), "
          f"{100 * total['at_steep'] / max(total['apart'], 1):.1f}% where OpenCV's flow changes "
          f"by > 0.5 px a pixel ({100 * total['steep_pixels'] / total['pixels']:.1f}% of all)")


def cells(scores: dict[str, float]) -> list[str]:
    return [f"{scores['epe']:.4f}", f"{scores['magnitude']:.3f}",
            f"{scores['epe'] / max(scores['magnitude'], 1e-9):.3f}",
            f"{100 * scores['over_one']:.2f}%", f"{100 * scores['floor']:.2f}%"]


def dis_loop(dis: cv2.DISOpticalFlow, pairs: np.ndarray) -> None:
    for previous, current in pairs:
        dis.calc(previous, current, None)


def speed(args) -> None:
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    ucf = [row for row in clips(args.real_clips) if row["dataset"] == "UCF101"]
    per_clip = max(1, args.speed_pairs // len(ucf))
    for label, resize in (("320x240", False), ("short side 128", True)):
        pairs = np.concatenate([
            frame_pairs(row["path"], short_side_size(int(row["width"]), int(row["height"]),
                                                      SHORT_SIDE) if resize else None, per_clip)
            for row in ucf])
        path = args.work / f"speed_{label.replace(' ', '_')}.npy"
        np.save(path, pairs)
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        steps = {f"ours, batch {b}": partial(ours, pairs, b) for b in BATCH_SIZES}
        steps["DIS medium (opencv-python)"] = partial(dis_loop, dis, pairs)
        for method in steps.values():
            method()  # warm-up
        seconds: dict[str, list[float]] = {name: [] for name in [*steps, "OpenCV TV-L1"]}
        others: dict[str, list[float]] = {name: [] for name in seconds}  # others' CPU s
        for run in range(args.runs):
            order = list(seconds)
            order = order[run % len(order):] + order[:run % len(order)]
            for name in order:
                with ForeignCpu() as foreign:
                    if name == "OpenCV TV-L1":
                        timed = reference(args, "time", path, args.threads)["seconds"]
                    else:
                        started = time.perf_counter()
                        steps[name]()
                        timed = time.perf_counter() - started
                seconds[name].append(timed)
                others[name].append(foreign.seconds)
            print(f"  {label} run {run + 1}: " + ", ".join(
                f"{k} {v[-1]:.2f}s" for k, v in seconds.items()), flush=True)
        rates = {name: len(pairs) / median(times) for name, times in seconds.items()}
        print(f"\nspeed at {label} ({pairs.shape[-1]}x{pairs.shape[-2]}), {len(pairs)} pairs, "
              f"{args.threads} threads, median of {args.runs}")
        print(table(["method", "runs (s)", "pairs/s", "vs OpenCV TV-L1", "vs DIS medium",
                     "CPU s of other processes per run"],
                    [[name, fmt_runs(times), f"{rates[name]:.2f}",
                      f"{rates[name] / rates['OpenCV TV-L1']:.2f}x",
                      f"{rates[name] / rates['DIS medium (opencv-python)']:.3f}x",
                      fmt_runs(others[name])]
                     for name, times in seconds.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-clips", type=Path, default=default_real_clips())
    parser.add_argument("--ref-python", default="/tmp/tvl1-ref-venv/bin/python",
                        help="a python with opencv-contrib-python (cv2.optflow)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_tvl1"),
                        help="where pairs and OpenCV's flows are saved as .npy and reused")
    parser.add_argument("--recompute", action="store_true", help="recompute OpenCV's flows")
    parser.add_argument("--pairs", type=int, default=8, help="pairs a clip for parity")
    parser.add_argument("--speed-pairs", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-parity", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print("# bench_tvl1")
    print("command: " + " ".join([Path(sys.executable).name] + sys.argv))
    info = machine_info()
    info["torch"] = torch.__version__
    print_machine(info)
    if not args.no_parity:
        torch.set_num_threads(args.threads)
        parity(args)
    if not args.no_speed:
        speed(args)


if __name__ == "__main__":
    main()
