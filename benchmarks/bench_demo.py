"""`slic demo` as the user waits for it: from an empty folder, then again in the same folder
(every stage up to date), as whole processes, with the demo's own time per step, its table,
the peak resident memory and the CPU time other processes used meanwhile.

Run from the repository root:
    python benchmarks/bench_demo.py            # the full demo
    python benchmarks/bench_demo.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    ForeignCpu,
    machine_info,
    print_machine,
    slic_command,
    table,
)


def demo_process(workspace: Path, quick: bool) -> tuple[float, float, float, dict]:
    """(wall s, peak RSS MB, CPU s used by others, summary) of one `slic demo --json`."""
    command = slic_command() + ["demo", "--workspace", str(workspace), "--json"]
    command += ["--quick"] if quick else []
    with ForeignCpu() as foreign, tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    return wall, usage.ru_maxrss / 1024, foreign.seconds, json.loads(text.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch) / "slic-demo"
        runs = [demo_process(workspace, args.quick) for _ in range(2)]
    print_machine(machine_info())  # after the runs: it imports numpy and cv2
    names = ("from an empty folder", "again, same folder")
    print(table(["run", "wall (s)", "peak RSS (MB)", "CPU s used by other processes"],
                [(name, f"{wall:.1f}", f"{peak:.0f}", f"{other:.1f}")
                 for name, (wall, peak, other, _) in zip(names, runs)]))
    first = runs[0][3]
    print()
    print(table(["step (first run)", "seconds"],
                [(step, f"{seconds:.1f}") for step, seconds in first["stage_seconds"].items()]))
    print()
    print(table(["metric", "SLIC", "random init"],
                [(row["metric"], f"{row['slic']:.3f}", f"{row['random_init']:.3f}")
                 for row in first["results"]]))
    margin = first["results"][0]["slic"] - first["results"][0]["random_init"]
    print(f"\nR@1 margin (SLIC - random init): {margin:.3f}; second run's table identical: "
          f"{runs[1][3]['results'] == first['results']}")


if __name__ == "__main__":
    main()
