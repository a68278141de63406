"""The promise every reader of a user-supplied file keeps, whatever the file holds: it
returns, or raises one of slic's own errors (a SlicError: ConfigError, DataError,
ArtifactError...) whose message is one line; never another exception, never a hang."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy

from stages.runtime.errors import SlicError

# Each reader is given a few seconds: every file of the battery is a few kilobytes.
DEADLINE_S = 20


class Hang(Exception):
    """A reader that ran past DEADLINE_S on a file of a few kilobytes."""


@contextmanager
def deadline(seconds: float = DEADLINE_S) -> Iterator[None]:
    """Raise Hang in the block once `seconds` have passed (SIGALRM: main thread only)."""
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def kept_promise(read: Callable[[], Any]) -> SlicError | None:
    """Run `read`; None when it returns, its error when it raises a SlicError of one line.
    Any other exception fails the test as itself (with its traceback)."""
    try:
        with deadline():
            read()
    except SlicError as error:
        message = str(error)
        assert message.strip(), f"{type(error).__name__} with an empty message"
        assert "\n" not in message.strip() and "Traceback" not in message, message
        return error
    return None


def examples(count: int) -> settings:
    """Hypothesis settings of the battery: `count` examples, reproducible (derandomized), no
    example database written into the checkout, no per-example deadline (files are written
    to disk, and the machine is shared)."""
    return settings(max_examples=count, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


QUICK = 25  # examples of a reader in the quick loop
SLOW = 250  # examples of a reader under -m slow (each forks a first read: about 1 min)


def file_battery(name: str, contents: SearchStrategy[bytes], read: Callable[[Path], Any],
                 count: int) -> Callable[..., None]:
    """A test that writes `count` drawn `contents` to a file called `name` in its tmp_path,
    one at a time, and checks that `read` of that file keeps the promise."""
    @examples(count)
    @given(data=contents)
    def battery(tmp_path: Path, data: bytes) -> None:
        path = tmp_path / name
        path.write_bytes(data)
        kept_promise(lambda: read(path))

    return battery
