"""A first read of an artifact in a child process, so that what HDF5 cannot survive of a
damaged or crafted file ends in one line instead of taking slic down with it.

HDF5 (2.0, bundled with h5py) crashes natively on some damaged attribute messages and loops
forever, holding Python's lock, on a global heap whose free space is misdeclared
(tests/fuzz): neither can be caught or timed out inside the process that meets it. So
`open_artifact` first opens the file in a forked child that runs the same checks and reads what
the stages will read of it (every attribute, every dataset up to PROBE_WHOLE_BYTES whole, the
first and last element of larger ones); the parent goes on only when the child came back. A
fork costs milliseconds; where there is none (Windows), the checks run in the process.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from collections.abc import Callable

# A child that has not finished reading a file's metadata in this time is stuck in HDF5.
PROBE_TIMEOUT_S = 120.0
# Datasets up to this size are read whole by the probe (tables, offsets, features); of a
# larger one (an image stream's bytes) the first and last element.
PROBE_WHOLE_BYTES = 2**24
_MESSAGE_BYTES = 4096  # the child's one line, well inside a pipe's buffer


def can_isolate() -> bool:
    """Whether this platform forks cheaply and safely for a probe (Linux)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def run_isolated(probe: Callable[[], str | None], timeout: float | None = None
                 ) -> str | None:
    """Run `probe` in a forked child and return what it returned: None (the file read whole)
    or a one-line problem. A child killed by a signal or still running after `timeout` seconds
    (PROBE_TIMEOUT_S) gives a problem line saying so; the child is then killed."""
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never flushes or closes what the parent owns
        os.close(read_end)
        _silence()
        try:
            outcome = probe()
        except BaseException as error:  # noqa: BLE001 - every failure is reported as a line
            outcome = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        os.write(write_end, json.dumps(outcome).encode()[:_MESSAGE_BYTES])
        os._exit(0)
    os.close(write_end)
    try:
        status = _wait(pid, timeout)
        message = os.read(read_end, _MESSAGE_BYTES)
    finally:
        os.close(read_end)
    if status is None:
        return f"HDF5 did not finish reading it in {timeout:.0f} s"
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return f"HDF5 crashed reading it ({name})"
    try:
        outcome = json.loads(message.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "its first read ended without a verdict"
    return None if outcome is None else str(outcome)


def _silence() -> None:
    """In the child: no crash report or warning of its own reaches the user's terminal (the
    parent says what happened, in one line)."""
    faulthandler.disable()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _wait(pid: int, timeout: float) -> int | None:
    """The child's wait status, or None after killing it when `timeout` seconds passed."""
    deadline, pause = time.monotonic() + timeout, 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
