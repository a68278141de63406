"""Helpers shared by the benchmark scripts: inputs, subprocess timing, machine info, tables."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


def default_real_clips() -> Path:
    """`../shared/data/real-clips` relative to the repository root."""
    return REPO_ROOT.parent / "shared" / "data" / "real-clips"


def ffmpeg_binary(explicit: str | None = None) -> str:
    """The ffmpeg to use for both sides: --ffmpeg, else imageio-ffmpeg's bundled binary."""
    if explicit:
        return explicit
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def slic_command() -> list[str]:
    found = shutil.which("slic")
    return [found] if found else [sys.executable, "-c", "from slic_cli.app import main; main()"]


def machine_info() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.CalledProcessError):
        pass
    import cv2
    import numpy

    import stages

    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return {
        "slic_commit": commit, "stages_from": str(Path(stages.__file__).parent),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": model, "cores": str(os.cpu_count()), "python": platform.python_version(),
        "opencv": cv2.__version__, "numpy": numpy.__version__,
    }


def print_machine(info: dict[str, str]) -> None:
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))


def prepare_folder_input(source: Path, dest: Path) -> Path:
    """A `<class>/<video>` tree usable by `--dataset folder`.

    `source` already shaped `<class>/<video>` is returned as is. A collection shaped
    `<dataset>/<class>/<video>` (like real-clips) becomes `dest/<class>/<video>` symlinks, so one
    run sees every clip; a clash of names gets the dataset name as prefix.
    """
    source = source.resolve()
    if not source.is_dir():
        raise SystemExit(f"input folder {source} does not exist")

    def videos(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower()
                      in VIDEO_SUFFIXES)

    subdirs = sorted(p for p in source.iterdir() if p.is_dir())
    if any(videos(d) for d in subdirs):
        return source
    if dest.exists():
        shutil.rmtree(dest)
    count = 0
    for dataset in subdirs:
        for class_dir in sorted(p for p in dataset.iterdir() if p.is_dir()):
            for video in videos(class_dir):
                target = dest / class_dir.name / video.name
                if target.exists():
                    target = dest / class_dir.name / f"{dataset.name}_{video.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(video)
                count += 1
    if not count:
        raise SystemExit(f"no videos found under {source}")
    return dest


def make_synthetic(dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(slic_command() + ["make-dataset", "synthetic", "--out", str(dest)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return dest


def run_slic(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, dict]:
    """Run `slic <args> --json`; returns (wall seconds of the subprocess, summary JSON)."""
    command = slic_command() + list(args)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    """mean ± standard error (one value: the value)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {standard_error(values):.3f}"


def standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / len(values) ** 0.5


def logged_runs(path: Path | None) -> dict[tuple[str, int], dict]:
    """(variant, seed) -> the run's record, of every run already in the JSONL log at `path`
    (a benchmark stopped part-way, or extended by more seeds, resumes from it)."""
    if path is None or not path.is_file():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["variant"], r["seed"]): r for r in records}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def disk_usage(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of a file or tree, as `du -sb` and `du -sk`*1024 count."""
    if shutil.which("du"):
        apparent = int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True,
                                      check=True).stdout.split()[0])
        blocks_k = int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True,
                                      check=True).stdout.split()[0])
        return apparent, blocks_k * 1024
    paths = [path] + (list(path.rglob("*")) if path.is_dir() else [])
    stats = [p.lstat() for p in paths]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def fmt_runs(values: Sequence[float], digits: int = 2) -> str:
    return "/".join(f"{v:.{digits}f}" for v in values)


def _cpu_busy_seconds() -> float:
    """CPU time all processes on the machine have used (user, system, irq, steal), from
    /proc/stat; 0 where there is none."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class ForeignCpu:
    """CPU seconds used on the machine by anything but this process and its (reaped) children
    while the block runs: a check that a timing was not disturbed by other work."""

    def __enter__(self) -> ForeignCpu:
        self.busy, self.own = _cpu_busy_seconds(), _own_cpu_seconds()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = max(0.0, (_cpu_busy_seconds() - self.busy) - (_own_cpu_seconds() - self.own))
