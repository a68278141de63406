"""The skeleton both data stages share: cache check, per-video processing, merge, result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.io.artifacts import (
    Failure,
    artifact_fingerprint,
    open_artifact,
    read_failures,
    read_video_table,
    stream_info,
    stream_names,
    video_artifact_space,
    video_count,
)
from stages.io.space import require_space
from stages.io.staging import StagingArea
from stages.per_video.jobs import ProcessCounts, Shard, VideoWorker, process_videos
from stages.runtime.context import RunContext
from stages.runtime.errors import VideosInterrupted
from stages.runtime.run_lock import artifact_lock


@dataclass
class VideoStageResult:
    """What a data stage did; `summary()` is what `--json` prints."""

    stage: str
    output: Path
    status: str  # "written", "up to date", or "shard done" (another shard will merge)
    shard: str
    num_videos: int
    counts: ProcessCounts = field(default_factory=ProcessCounts)
    num_failed: int = 0
    num_missing: int = 0
    num_images: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    # Videos kept with a note (a truncated file): {"video_id", "relpath", "note"} each.
    truncated: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `status`, `shard`, videos `reused`, `processed`,
        `num_failed`, `num_missing` and `num_truncated`, `num_images`, `bytes`, the failures,
        the truncated videos and their notes (`truncated`), the first 10 missing names
        (`missing_first`) and the stage's `extra` keys."""
        return {
            "stage": self.stage, "output": str(self.output), "status": self.status,
            "shard": self.shard, "num_videos": self.num_videos,
            "reused": self.counts.reused, "processed": self.counts.processed,
            "num_failed": self.num_failed, "num_missing": self.num_missing,
            "num_truncated": len(self.truncated), "num_images": self.num_images,
            "bytes": self.bytes, "seconds": round(self.seconds, 3),
            "failures": [f.__dict__ for f in self.failures], "truncated": self.truncated,
            "missing_first": self.missing[:10], **self.extra,
        }


# Writes the artifact at the stage's output from the staged parts of every video.
Merger = Callable[[StagingArea], None]


def run_video_stage(
    stage: str, output: Path, fingerprint: str, payloads: list[Any], worker: VideoWorker,
    merge: Merger, shard: Shard, workers: int, context: RunContext, description: str,
    costs: list[float] | None = None,
) -> VideoStageResult:
    """Process this shard's videos and, when every shard is done, merge them into `output`.
    One process at a time writes `output` (each shard of it: shards run at once on purpose);
    a second one raises ConfigError naming the first."""
    part = "" if shard.count == 1 else f"shard-{shard.index}-of-{shard.count}"
    with artifact_lock(output, stage, part):
        return _process_and_merge(stage, output, fingerprint, payloads, worker, merge, shard,
                                  workers, context, description, costs)


def _process_and_merge(
    stage: str, output: Path, fingerprint: str, payloads: list[Any], worker: VideoWorker,
    merge: Merger, shard: Shard, workers: int, context: RunContext, description: str,
    costs: list[float] | None,
) -> VideoStageResult:
    """`run_video_stage` once its lock is held."""
    started = time.perf_counter()
    result = VideoStageResult(stage, output, "up to date", str(shard), len(payloads))
    staging = StagingArea(output, fingerprint)
    if context.force:
        output.unlink(missing_ok=True)
        staging.remove_positions([p for p in range(len(payloads)) if shard.owns(p)])
    if artifact_fingerprint(output) == fingerprint:
        _describe_existing(result)
        return result
    result.counts = process_videos(payloads, worker, staging, output, fingerprint, shard,
                                   workers, context.progress, description, costs)
    if result.counts.interrupted:
        raise VideosInterrupted(
            f"{stage}: {result.counts.interrupted} videos were interrupted "
            f"({result.counts.interruption}); the {len(staging.done_positions())} others are "
            "kept: run the same command again to retry them")
    result.status = "shard done"
    if len(staging.done_positions()) == len(payloads):
        # Shards leave the merge to whoever holds the lock; a whole run waits for a twin
        # process merging the same output, then finds it written.
        with staging.merge_lock(wait=shard.count == 1) as acquired:
            if acquired and artifact_fingerprint(output) != fingerprint:
                # A merge that runs out of space midway can crash HDF5 natively: check first.
                streams, meta_bytes = staging.contents()
                require_space(output.parent,
                              video_artifact_space(streams, len(payloads), meta_bytes),
                              f"merging {len(payloads)} videos into {output.name}")
                context.progress.message(f"merging {len(payloads)} videos into {output}")
                merge(staging)
                staging.clear()
    if artifact_fingerprint(output) == fingerprint:
        result.status = "written"
        _describe_existing(result)
    result.seconds = time.perf_counter() - started
    return result


def _describe_existing(result: VideoStageResult) -> None:
    """Fill a result's counts from the artifact on disk."""
    with open_artifact(result.output) as h5:
        result.failures, result.missing = read_failures(h5)
        result.num_failed, result.num_missing = len(result.failures), len(result.missing)
        streams = stream_names(h5)
        result.num_images = stream_info(h5, streams[0])["num_images"] if streams else 0
        result.bytes = sum(stream_info(h5, s)["bytes"] for s in streams)
        result.extra["num_written"] = video_count(h5)
        table = read_video_table(h5)
    result.truncated = [{"video_id": video_id, "relpath": relpath, "note": note}
                        for video_id, relpath, note in zip(table.columns["video_id"],
                                                           table.columns["relpath"],
                                                           table.columns["note"]) if note]
