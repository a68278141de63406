"""What the first read of an artifact in a forked child costs: open_artifact (the kernel)
and `slic inspect` (the whole command), each against the same checks run in the process.

    python benchmarks/bench_first_read.py --frames WS/NAME/frames.h5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_info, print_machine  # noqa: E402

DISABLED = ("import sys; import stages.io.artifacts.core as core; core.can_isolate = lambda: "
            "False; from slic_cli.app import main; sys.argv[0] = 'slic'; main()")
ENABLED = "import sys; from slic_cli.app import main; sys.argv[0] = 'slic'; main()"


def open_cost(frames: Path, repeats: int) -> dict[str, float]:
    """Median ms of open_artifact + close of a copy of `frames` (a file this process did not
    write), with the first read in a child and without (the checks in the process only)."""
    import torch  # noqa: F401 - the CLI's training commands fork a process that holds torch

    from stages.io.artifacts import core, open_artifact

    found: dict[str, list[float]] = {"child": [], "in process": []}
    folder = Path(tempfile.mkdtemp(prefix="slic-first-read-"))
    try:
        for index in range(repeats):
            for way in found:
                copy = folder / f"{way.replace(' ', '-')}-{index}.h5"
                shutil.copy(frames, copy)  # a new inode: never probed before
                core.can_isolate = (lambda: False) if way == "in process" else (
                    lambda: sys.platform.startswith("linux"))
                started = time.perf_counter()
                open_artifact(copy).close()
                found[way].append(1000 * (time.perf_counter() - started))
    finally:
        shutil.rmtree(folder)
    return {way: statistics.median(times) for way, times in found.items()}


def inspect_cost(frames: Path, repeats: int) -> dict[str, float]:
    """Median wall seconds of `slic inspect FILE --json`, with and without the child."""
    found: dict[str, list[float]] = {"child": [], "in process": []}
    for _ in range(repeats):
        for way, code in (("child", ENABLED), ("in process", DISABLED)):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, "inspect", str(frames), "--json"],
                           check=True, capture_output=True, timeout=300)
            found[way].append(time.perf_counter() - started)
    return {way: statistics.median(times) for way, times in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print_machine(machine_info())
    size = args.frames.stat().st_size
    opened = open_cost(args.frames, args.repeats)
    print(f"open_artifact of a {size / 2**20:.1f} MiB frames.h5 (kernel), median of "
          f"{args.repeats}: first read in a child {opened['child']:.1f} ms, in the process "
          f"{opened['in process']:.1f} ms, ratio {opened['child'] / opened['in process']:.2f}")
    inspected = inspect_cost(args.frames, args.repeats)
    print(f"slic inspect --json (whole command), median of {args.repeats}: child "
          f"{inspected['child']:.2f} s, in the process {inspected['in process']:.2f} s, ratio "
          f"{inspected['child'] / inspected['in process']:.2f}")


if __name__ == "__main__":
    main()
