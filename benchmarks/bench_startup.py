"""What the user waits for before a command does anything: `slic --help`, `slic inspect
--help` and `slic inspect FILE` as whole processes, against the bare start-up of the
libraries every Typer command line needs (`python -c "import typer, rich"`).

slic's own modules are compiled to bytecode first (`compileall`), as `pip install` does:
where PYTHONDONTWRITEBYTECODE is set (as on this machine), an editable install would
otherwise compile every module from source at every start. The commands run interleaved
(bare, help, inspect-help, inspect, bare, ...), so a burst of load elsewhere hits all of
them alike; each figure is the median of --runs, with the process's CPU time (user +
system, the steadier figure on a loaded machine) and peak resident memory. The ratios are
what the issue's check reads (goal: <= 3x the bare start-up).

Run from the repository root:
    python benchmarks/bench_startup.py --runs 15
    python benchmarks/bench_startup.py --file slic-demo/synthetic/frames.h5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import (  # noqa: E402
    REPO_ROOT,
    ForeignCpu,
    machine_info,
    print_machine,
    slic_command,
    table,
)


def timed_process(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak resident MB) of one run of `command`, output
    discarded. CPU time (user + system) is the steadier figure on a loaded machine."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def small_frames_file(folder: Path) -> Path:
    """frames.h5 of the built-in synthetic dataset at its default size (192 videos)."""
    data = folder / "data"
    subprocess.run(slic_command() + ["make-dataset", "synthetic", "--out", str(data), "-q"],
                   check=True)
    subprocess.run(slic_command() + ["extract-frames", "--dataset", "synthetic", "--root",
                                     str(data), "--workspace", str(folder / "ws"), "-q"],
                   check=True)
    return folder / "ws" / "synthetic" / "frames.h5"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--file", type=Path, help="artifact for `slic inspect FILE` "
                        "[frames.h5 of the synthetic dataset, made in a temporary folder]")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "slic_cli"),
                    str(REPO_ROOT / "stages")], check=True)
    with tempfile.TemporaryDirectory() as scratch:
        artifact = args.file or small_frames_file(Path(scratch))
        commands = {
            "python -c 'import typer, rich' (bare)": [sys.executable, "-c",
                                                       "import typer, rich"],
            "slic --help": slic_command() + ["--help"],
            "slic inspect --help": slic_command() + ["inspect", "--help"],
            f"slic inspect {artifact.name}": slic_command() + ["inspect", str(artifact)],
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        memory: dict[str, list[float]] = {name: [] for name in commands}
        with ForeignCpu() as foreign:
            for _ in range(args.runs):
                for name, command in commands.items():
                    wall, seconds, peak = timed_process(command)
                    walls[name].append(wall)
                    cpu[name].append(seconds)
                    memory[name].append(peak)
    # Only now: machine_info imports numpy and cv2, and a forked child's peak memory would
    # count the parent's.
    print_machine(machine_info())
    bare = statistics.median(next(iter(walls.values())))
    bare_cpu = statistics.median(next(iter(cpu.values())))
    rows = [(name, f"{statistics.median(w):.3f}", f"{min(w):.3f}",
             f"{statistics.median(w) / bare:.2f}x", f"{statistics.median(cpu[name]):.3f}",
             f"{statistics.median(cpu[name]) / bare_cpu:.2f}x",
             f"{statistics.median(memory[name]):.0f}")
            for name, w in walls.items()]
    print(f"\n{args.runs} interleaved runs each; CPU used by other processes meanwhile: "
          f"{foreign.seconds:.1f} s\n")
    print(table(["command", "median wall (s)", "fastest wall (s)", "wall / bare",
                 "median CPU (s)", "CPU / bare", "peak RSS (MB)"], rows))


if __name__ == "__main__":
    main()
