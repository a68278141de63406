"""extract-frames: decode every video of a dataset into one frames.h5 (see README, "frames.h5")."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from stages import __version__
from stages.datasets import DatasetListing, list_dataset
from stages.extract_frames_config import ExtractFramesConfig
from stages.io.artifacts import (
    FRAME_STREAM,
    KIND_FRAMES,
    Failure,
    ImageStreamWriter,
    Provenance,
    VideoTable,
    check_output,
    file_checksum,
    write_artifact,
    write_content_digest,
    write_failures,
    write_provenance,
    write_video_table,
)
from stages.io.images import encode_image
from stages.io.staging import EncodedStream, StagingArea, pack_images
from stages.io.video import StreamInfo, decode_frames, decoding_note, encode_jpeg_frames
from stages.per_video.jobs import Shard
from stages.per_video.stage import VideoStageResult, run_video_stage
from stages.runtime.context import RunContext, fingerprint, now
from stages.runtime.cores import worker_processes
from stages.runtime.sections import DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant
from stages.runtime.workspace import frames_path

# Part of the cache key, raised when decoding changes which frames come out, so frames.h5 files
# made before are redone rather than reported up to date. 2: each decoded frame kept once.
DECODING_REVISION = 2


def _encoded_frames(path: Path, payload: dict[str, Any], info: StreamInfo) -> list[np.ndarray]:
    """Every frame of a video, stored as `payload["codec"]` says: JPEG from ffmpeg, or raw RGB."""
    if payload["codec"] == "jpeg":
        jpegs = encode_jpeg_frames(path, payload["short_side"], payload["fps"],
                                   payload["jpeg_qscale"], info,
                                   timeout=payload["decode_timeout"])
        return [np.frombuffer(jpeg, np.uint8) for jpeg in jpegs]
    frames = decode_frames(path, payload["short_side"], payload["fps"], info,
                           timeout=payload["decode_timeout"])
    return [encode_image(frame, "raw") for frame in frames]


def extract_video(payload: dict[str, Any]) -> tuple[dict[str, EncodedStream], dict[str, Any]]:
    """Decode one video into encoded frames; raises with the reason if it cannot. The meta's
    `note` says what was wrong with a video kept all the same (a truncated file), else ""."""
    path = Path(payload["path"])
    info = StreamInfo()
    encoded = _encoded_frames(path, payload, info)
    note = decoding_note(path, len(encoded), info, payload["fps"])
    if len(encoded) < payload["min_frames"]:
        raise ValueError(
            f"too short: {len(encoded)} frames decoded, at least {payload['min_frames']} needed"
            + (f" ({note})" if note else ""))
    meta = {
        "frame_count": len(encoded), "fps": payload["fps"] or info.src_fps,
        "src_fps": info.src_fps, "src_width": info.src_width, "src_height": info.src_height,
        "width": info.width, "height": info.height,
        "file_size": path.stat().st_size, "checksum": file_checksum(path), "note": note,
    }
    return {FRAME_STREAM: pack_images(encoded)}, meta


def _describe_inputs(listing: DatasetListing, settings: ExtractFramesConfig) -> dict[str, Any]:
    """Everything the artifact depends on: settings, the listing, and each file's size and age."""
    stats = []
    for video in listing.videos:
        try:
            stat = os.stat(listing.video_root / video.relpath)
            size, modified = stat.st_size, stat.st_mtime_ns
        except FileNotFoundError:  # a dangling link: decoding fails and is recorded
            size, modified = 0, 0
        stats.append([video.relpath, video.label, video.membership, size, modified])
    return {"stage": "extract-frames", "decoding": DECODING_REVISION,
            "settings": output_relevant(settings),
            "dataset": listing.name, "classes": listing.class_names,
            "splits": listing.split_names, "videos": stats, "missing": listing.missing}


def _merge(listing: DatasetListing, staging: StagingArea, output: Path, key: str,
           settings: ExtractFramesConfig, context: RunContext, started: str) -> None:
    rows, memberships, failures = [], [], []
    with write_artifact(output, KIND_FRAMES, key) as h5:
        digest = hashlib.blake2b(digest_size=16)
        stream = ImageStreamWriter(h5, FRAME_STREAM, settings.codec, 3, digest)
        context.progress.start("merging videos", len(listing.videos))
        for position, video in enumerate(listing.videos):
            context.progress.advance()
            streams, meta = staging.read(position)
            if "failure" in meta:
                failures.append(Failure(video.video_id, video.relpath, meta["failure"]))
                continue
            data, offsets = streams[FRAME_STREAM]
            first = stream.append(data, offsets)
            rows.append({"video_id": video.video_id, "relpath": video.relpath,
                         "class_name": video.class_name, "label": video.label,
                         "first_image": first, "num_images": len(offsets) - 1, **meta})
            memberships.append(video.membership)
        context.progress.finish()
        table = VideoTable.from_rows(rows, listing.class_names, listing.split_names, memberships)
        write_video_table(h5, table)
        write_failures(h5, failures, listing.missing)
        write_content_digest(h5, digest.hexdigest())
        videos_digest = hashlib.blake2b("".join(r["checksum"] for r in rows).encode(),
                                        digest_size=16).hexdigest()
        inputs = [{"path": str(f), "size": f.stat().st_size, "checksum": file_checksum(f)}
                  for f in listing.list_files]
        inputs.append({"path": str(listing.video_root), "videos": len(rows),
                       "size": sum(r["file_size"] for r in rows), "checksum": videos_digest})
        write_provenance(h5, Provenance(context.command, context.config, __version__, inputs,
                                        started, now(), {"dataset": listing.name}))


def run(
    settings: ExtractFramesConfig, data: DataConfig, workspace: WorkspaceConfig, *,
    context: RunContext | None = None, out: Path | None = None, shard: Shard | None = None,
) -> VideoStageResult:
    """Decode the dataset's videos into `out` (default `<workspace>/<dataset>/frames.h5`)."""
    context = (context or RunContext()).running(extract_frames=settings, data=data,
                                                workspace=workspace)
    shard = shard or Shard()
    started = now()
    output = Path(out) if out is not None else frames_path(workspace, data)
    check_output(output, KIND_FRAMES)
    root = Path(data.root) if data.root is not None else None
    listing = list_dataset(data.dataset, root, data.test_ratio, data.split_seed, data.labels)
    if not listing.class_names:
        context.progress.message(
            f"the {len(listing.videos)} videos are unlabelled (data.labels {data.labels}) and "
            "all train: pretrain monitors what needs no labels; retrieve, linear-probe and "
            "finetune need labelled videos")
    if listing.missing:
        context.progress.message(
            f"{len(listing.missing)} videos named in the split files are missing, first: "
            + ", ".join(listing.missing[:3])
        )
    if listing.skipped_links:
        context.progress.message(
            f"{len(listing.skipped_links)} links lead to videos or folders already found and "
            "were followed once only, first: " + ", ".join(listing.skipped_links[:3]))
    for warning in listing.warnings:
        context.progress.message(f"warning: {warning}")
    if listing.not_regular:
        context.progress.message(
            f"{len(listing.not_regular)} video names are not regular files (FIFOs, devices) "
            "and were not read, first: " + ", ".join(listing.not_regular[:3]))
    if listing.case_twins and data.dataset != "folder":
        context.progress.message(
            f"{len(listing.case_twins)} videos differ from another only by the case of their "
            "path; the split files match the other one, first: "
            + ", ".join(listing.case_twins[:3]))
    description = _describe_inputs(listing, settings)
    key = fingerprint(description)
    payloads = [
        {"path": str(listing.video_root / v.relpath), "short_side": settings.short_side,
         "fps": settings.fps, "codec": settings.codec, "jpeg_qscale": settings.jpeg_qscale,
         "min_frames": settings.min_frames, "decode_timeout": settings.decode_timeout}
        for v in listing.videos
    ]

    def merge(staging: StagingArea) -> None:
        _merge(listing, staging, output, key, settings, context, started)

    sizes = [float(size) for _, _, _, size, _ in description["videos"]]
    result = run_video_stage("extract-frames", output, key, payloads, extract_video, merge,
                             shard, worker_processes(settings.workers), context,
                             "decoding videos", sizes)
    result.missing, result.num_missing = listing.missing, len(listing.missing)
    result.extra["skipped_links"] = len(listing.skipped_links)
    result.extra["not_regular"] = len(listing.not_regular)
    result.extra["case_twins"] = len(listing.case_twins)
    return result
