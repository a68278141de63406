"""Parts of a check run one after another, each in subprocesses with a timeout, each recorded
(figures, table rows, wall time, or a one-line reason) whatever happens to the others.

Used by `gpu_check.py run`: on a GPU node a hung CUDA call or a stuck DataLoader worker must
cost one row of the table, never the whole check.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# A part whose budget has less than this left is skipped rather than started to be killed.
MIN_CHILD_SECONDS = 10.0
STDERR_TAIL_LINES = 20


class Skipped(Exception):
    """A part that does not apply here (or has no time left); the message says why."""


class ChildFailed(Exception):
    """A subprocess that exited non-zero; the message is one line, `tail` its last stderr."""

    def __init__(self, message: str, tail: str) -> None:
        super().__init__(message)
        self.tail = tail


class ChildTimedOut(Exception):
    """A subprocess killed (with its whole process group) at its timeout."""


@dataclass
class Entry:
    """The outcome of one part: status ok, failed, timed out or skipped; `rows` are its
    (what, figure) lines of the table; `figures` every number, for the JSON file."""

    section: str
    name: str
    status: str = "ok"
    message: str = ""
    wall_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)
    stderr_tail: str = ""


@dataclass
class Found:
    """What a part measured: figures for the JSON file, (what, figure) rows for the table."""

    figures: dict[str, Any]
    rows: list[tuple[str, str]]


@dataclass
class Budget:
    """Each subprocess's timeout: `per_child` seconds, and never past the whole run's end."""

    per_child: float
    total: float
    started: float = field(default_factory=time.monotonic)

    def timeout(self) -> float:
        """Seconds the next subprocess may run; Skipped when the run's budget is spent."""
        left = self.total - (time.monotonic() - self.started)
        if left < MIN_CHILD_SECONDS:
            raise Skipped(f"skipped: the run's budget of {self.total:.0f} s is spent")
        return min(self.per_child, left)


def run_child(what: str, argv: Sequence[str], timeout: float, env: dict[str, str]
              ) -> tuple[float, str]:
    """Run `argv` (called `what` in messages) in a new process group; returns (wall seconds,
    stdout). At `timeout` the whole group (DataLoader workers, torchrun's ranks) is killed:
    ChildTimedOut. A non-zero exit is ChildFailed with the last line of stderr."""
    started = time.perf_counter()
    with subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise ChildTimedOut(f"{what} timed out after {timeout:.0f} s") from None
    wall = time.perf_counter() - started
    if child.returncode != 0:
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {child.returncode}, no message"
        raise ChildFailed(f"{what}: {last}",
                          "\n".join(lines[-STDERR_TAIL_LINES:]))
    return wall, out


def record(section: str, name: str, part: Callable[[], Found]) -> Entry:
    """Run one part and record its outcome; an error in it becomes the entry's message."""
    entry = Entry(section, name)
    started = time.perf_counter()
    try:
        found = part()
        entry.figures, entry.rows = found.figures, found.rows
    except Skipped as reason:
        entry.status, entry.message = "skipped", str(reason)
    except ChildTimedOut as reason:
        entry.status, entry.message = "timed out", str(reason)
    except ChildFailed as reason:
        entry.status, entry.message, entry.stderr_tail = "failed", str(reason), reason.tail
    except Exception as reason:  # noqa: BLE001 - any error of one part is that part's row
        entry.status, entry.message = "failed", f"{type(reason).__name__}: {reason}"
    entry.wall_s = time.perf_counter() - started
    print(f"({section}) {name}: {entry.status} in {entry.wall_s:.1f} s"
          + (f" - {entry.message}" if entry.message else ""), flush=True)
    return entry


class UtilisationSampler:
    """nvidia-smi's utilisation.gpu of GPU `index` (nvidia-smi's numbering; None: sample
    nothing), every second while the block runs (torch.cuda.utilization needs pynvml, which
    a GPU node image may lack). `mean` is None where there is no nvidia-smi or no sample
    came back."""

    def __init__(self, index: int | None) -> None:
        self.index = index
        self.samples: list[float] = []
        self.binary = shutil.which("nvidia-smi") if index is not None else None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> UtilisationSampler:
        if self.binary:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.binary:
            self.thread.join()

    def _sample(self) -> None:
        while not self.stop.wait(1.0):
            try:
                out = subprocess.run([str(self.binary), "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits", "-i", str(self.index)],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                continue

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None
