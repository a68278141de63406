"""Run a function over many videos: in parallel, sharded, resumable, and merged in order.

Both data stages (extract-frames, compute-flow) are "one job per video, one artifact at the
end". This module owns that pattern: which videos this process takes (`--shard i/n`, or RANK and
WORLD_SIZE under torchrun), a pool of worker processes, parts kept in a StagingArea so a killed
run resumes, and the rule that the process finishing the last shard merges.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from stages.io.staging import EncodedStream, StagingArea
from stages.runtime.context import launch_position
from stages.runtime.errors import ConfigError, RetryableFailure
from stages.runtime.progress import Progress

# A per-video function: takes a picklable payload, returns encoded image streams and metadata.
# It raises any exception for a video it cannot process; the message becomes the reason.
VideoWorker = Callable[[Any], tuple[dict[str, EncodedStream], dict[str, Any]]]


@dataclass(frozen=True)
class Shard:
    """This process's share of the videos: those whose position % count == index."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """From `--shard i/n` (0-based i), else from torchrun's RANK/WORLD_SIZE, else all."""
        if text:
            try:
                index, count = (int(part) for part in text.split("/"))
            except ValueError:
                raise ConfigError(f"--shard {text!r} must look like i/n, for example 0/4") from None
            if not 0 <= index < count:
                raise ConfigError(f"--shard {text}: i must be in 0..n-1 (0-based)")
            return cls(index, count)
        rank, world = launch_position()
        return cls(rank, world) if world > 1 else cls()

    def owns(self, position: int) -> bool:
        """Whether the video at `position` belongs to this shard."""
        return position % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class ProcessCounts:
    """What one process did: videos reused from an earlier run, newly processed, failed now,
    and interrupted (a retryable failure: nothing staged, the next run tries again)."""

    reused: int = 0
    processed: int = 0
    failed: int = 0
    interrupted: int = 0
    interruption: str = ""  # the last retryable failure's reason


def _process_one(worker: VideoWorker, output: Path, fingerprint: str,
                 job: tuple[int, Any]) -> tuple[int, str | None, bool]:
    """Run `worker` on one payload and stage its part: (position, failure or None, whether
    the failure is retryable, in which case nothing is staged)."""
    position, payload = job
    try:
        streams, meta = worker(payload)
        failure = None
    except RetryableFailure as error:  # not the video's fault: leave it to the next run
        return position, str(error), True
    except Exception as error:  # any video-specific failure is recorded, never fatal
        failure = str(error) or type(error).__name__
        streams, meta = {}, {"failure": failure}
    StagingArea(output, fingerprint).write(position, streams, meta)
    return position, failure, False


@contextlib.contextmanager
def _opencv_threads_stopped() -> Iterator[None]:
    """OpenCV's worker threads do not survive a fork: a child that touches its thread pool
    (cv2.setNumThreads in `_init_worker`) waits for them forever. A parent that has run a
    parallel OpenCV call (the synthetic renderer's blending, in `slic demo`) stops them while
    it forks; they restart on its next parallel call."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    if multiprocessing.parent_process() is not None:
        # A worker dies at once on SIGTERM (the pool's terminate, or the command stopping),
        # whatever handler it inherited: a Python handler would wait for the C call under
        # way, and the worker would then write into pipes already closed.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def process_videos(
    payloads: list[Any], worker: VideoWorker, staging: StagingArea, output: Path,
    fingerprint: str, shard: Shard, workers: int, progress: Progress, description: str,
    costs: list[float] | None = None,
) -> ProcessCounts:
    """Run `worker` on this shard's payloads that have no part yet; parts go to `staging`.

    `costs` (one per payload, any unit) sets the dispatch order, most expensive first.
    """
    staging.prepare()
    done = staging.done_positions()
    mine = [p for p in range(len(payloads)) if shard.owns(p)]
    # Longest first: the last videos to finish are short ones, so no worker idles at the end.
    pending = sorted((p for p in mine if p not in done), key=lambda p: -costs[p] if costs else 0)
    todo = [(p, payloads[p]) for p in pending]
    counts = ProcessCounts(reused=len(mine) - len(todo))
    if counts.reused:
        progress.message(f"resuming: {counts.reused} videos already done are kept")
    progress.start(description, len(mine))
    progress.advance(counts.reused)
    task = partial(_process_one, worker, output, fingerprint)
    with contextlib.ExitStack() as stack:
        if workers <= 1 or len(todo) <= 1:
            _init_worker()
            results: Iterator[tuple[int, str | None, bool]] = map(task, todo)
        else:
            # fork: fast to start, and works from notebooks and scripts without a main guard. The
            # parent holds no open HDF5 file or decoder while it forks.
            context = multiprocessing.get_context("fork")
            with _opencv_threads_stopped():
                pool = stack.enter_context(
                    context.Pool(min(workers, len(todo)), initializer=_init_worker)
                )
            results = pool.imap_unordered(task, todo)
        for _, failure, retryable in results:
            counts.processed += 1
            if retryable:
                counts.interrupted += 1
                counts.interruption = failure or ""
            else:
                counts.failed += failure is not None
            progress.advance()
    progress.finish()
    return counts
