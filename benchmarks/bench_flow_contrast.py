"""The flow view's contrast against the official-like pipeline, and what it costs.

On the shared real clips (or --root), as whole commands:
- official-like: frames extracted at short side 256 (--big), flow with bound 20 in those
  frames' own pixels (reference_short_side null): a motion measured as the official 240-px
  frames measure it;
- slic's default: frames at short side 128, flow computed on them enlarged to the default
  reference_short_side (240) and resized back;
- resolution stored: frames at 128, flow computed on them, the bound scaled to their size;
- before the fix: frames at 128, bound 20 in the stored frames' pixels.
For each: the median over every stored flow frame of the standard deviation of its u image (in
levels of 0..255), and the wall time of compute-flow (the whole command). The ratio against the
official-like pipeline is what issue 26's check reads (>= 0.9).

Usage (from the repository root):
    python benchmarks/bench_flow_contrast.py [--root ../shared/data/real-clips] [--work DIR]
        [--runs 3] [--big 256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    default_real_clips,
    machine_info,
    prepare_folder_input,
    print_machine,
    run_slic,
    table,
)
from stages.clips.store import ClipStore  # noqa: E402

VARIANTS = {  # name: (frames short side or "big", reference_short_side, resolution)
    "official-like (frames at --big, bound 20 in their pixels)": ("big", "null", "reference"),
    "slic default (frames at 128, flow at 240)": (128, 240, "reference"),
    "resolution stored (frames at 128, bound scaled)": (128, 240, "stored"),
    "before (frames at 128, bound 20 in their pixels)": (128, "null", "reference"),
}


def median_u_spread(flow_folder: Path) -> float:
    """Median over every flow frame of the standard deviation of its stored u image."""
    store = ClipStore(flow_folder / "frames.h5", flow_folder / "flow.h5")
    spreads = []
    for video in range(len(store.table)):
        if not store.has_flow(video):
            continue
        count = store.frame_count(video) - 1
        u = store.flow(video, np.arange(count), "u").astype(np.float32)
        spreads.extend(u.reshape(count, -1).std(axis=1).tolist())
    return float(np.median(spreads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=default_real_clips())
    parser.add_argument("--work", type=Path)
    parser.add_argument("--runs", type=int, default=3, help="compute-flow timings a variant")
    parser.add_argument("--big", type=int, default=256, help="the official-like short side")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print_machine(machine_info())
    work = args.work or Path(tempfile.mkdtemp(prefix="flow-contrast-"))
    videos = prepare_folder_input(args.root, work / "videos")
    rows, spreads = [], {}
    for name, (side, reference, resolution) in VARIANTS.items():
        short = args.big if side == "big" else side
        workspace = work / f"ws-{short}"
        common = ["--dataset", "folder", "--name", "clips", "--workspace", str(workspace),
                  "--quiet", "--json"]
        run_slic(["extract-frames", *common, "--root", str(videos), "--workers",
                  str(args.workers), "--set", f"extract_frames.short_side={short}"])
        walls = []
        for _ in range(args.runs):
            wall, _ = run_slic(["compute-flow", *common, "--workers", str(args.workers),
                                "--force", "--set",
                                f"compute_flow.reference_short_side={reference}", "--set",
                                f"compute_flow.resolution={resolution}"])
            walls.append(wall)
        spreads[name] = median_u_spread(workspace / "clips")
        rows.append([name, f"{spreads[name]:.2f}", f"{statistics.median(walls):.1f}",
                     "/".join(f"{w:.1f}" for w in walls)])
    official = spreads[next(iter(VARIANTS))]
    for row, name in zip(rows, VARIANTS):
        row.insert(2, f"{spreads[name] / official:.2f}x")
    print(table(["variant", "median u std (levels)", "vs official-like",
                 "compute-flow median s", "runs s"], rows))
    default = spreads["slic default (frames at 128, flow at 240)"]
    print(f"contrast_ratio={default / official:.3f}")


if __name__ == "__main__":
    main()
