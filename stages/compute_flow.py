"""compute-flow: dense optical flow between consecutive frames of frames.h5, into flow.h5."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stages import __version__
from stages.compute_flow_config import ComputeFlowConfig
from stages.flow.methods import (
    VIDEO_FLOW_METHODS,
    check_flow_method,
    make_video_flow,
    quantise_flow,
)
from stages.io.artifacts import (
    FLOW_STREAMS,
    FRAME_STREAM,
    KIND_FLOW,
    KIND_FRAMES,
    ArtifactFile,
    Failure,
    ImageStreamWriter,
    Provenance,
    VideoTable,
    check_output,
    open_artifact,
    read_content_digest,
    read_encoded_images,
    read_failures,
    read_video_table,
    reopen_artifact,
    stream_codec,
    write_artifact,
    write_content_digest,
    write_failures,
    write_flow_settings,
    write_provenance,
    write_video_table,
)
from stages.io.images import decode_gray, encode_image
from stages.io.staging import EncodedStream, StagingArea, pack_images
from stages.per_video.jobs import Shard
from stages.per_video.stage import VideoStageResult, run_video_stage
from stages.runtime.context import RunContext, fingerprint, now
from stages.runtime.cores import worker_processes
from stages.runtime.errors import ConfigError
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant
from stages.runtime.workspace import flow_path, frames_path

# Pairs given to the flow method at once: a batched method (tvl1) batches them, and a long
# video's frames and float fields never all sit in memory (64 pairs at 320x240: 39 MB of
# fields, 5 MB of gray frames).
PAIRS_AT_ONCE = 64


# Per worker process: the open frames artifact and the flow function, made on first use.
_worker_state: dict[str, Any] = {}


def _frames_file(path: str) -> ArtifactFile:
    if _worker_state.get("frames_path") != path:
        _worker_state["frames_path"], _worker_state["frames"] = path, reopen_artifact(path)
    return _worker_state["frames"]


def _flow_function(method: str, preset: str, device: str):
    if _worker_state.get("method") != (method, preset, device):
        _worker_state["method"] = (method, preset, device)
        _worker_state["flow"] = make_video_flow(method, preset, device)
    return _worker_state["flow"]


def flow_geometry(settings: ComputeFlowConfig, height: int, width: int
                  ) -> tuple[tuple[int, int] | None, float]:
    """Where the flow of frames of `height` x `width` is computed, and its bound there: the
    size (height, width) to resize the frames to first (None: as stored) and the bound in
    pixels of that size. Either way a motion of 10 px in 240-px frames is stored as half the
    range (bound 20), as in the official flow, whether the frames are kept at 240 or 128."""
    reference, short = settings.reference_short_side, min(height, width)
    if reference is None or reference == short:
        return None, settings.bound
    if settings.resolution == "stored":
        return None, settings.bound * short / reference
    scale = reference / short
    return (round(height * scale), round(width * scale)), settings.bound


def resized(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w[, C]) images resized to `size` (height, width): area averaging to shrink,
    bilinear to enlarge. Values are kept (a flow field keeps its pixels' units)."""
    height, width = size
    shrink = height < images.shape[1]
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (width, height), interpolation=method)
                     for image in images])


def flow_device(method: str, compute: ComputeConfig) -> str:
    """The torch device the flow runs on: `compute.device` for a method that batches on any
    device (tvl1; under torchrun the GPU of the rank's LOCAL_RANK), the CPU for OpenCV's
    methods, which refuse a GPU asked for by name."""
    if method in VIDEO_FLOW_METHODS:
        from stages.training.compute import process_device  # imports torch, as tvl1 does

        return str(process_device(compute.device))
    if compute.device not in ("auto", "cpu"):
        raise ConfigError(f"--method {method} runs on the CPU only; --device {compute.device} "
                          "needs --method tvl1 (or use --device cpu)")
    return "cpu"


def flow_video(payload: dict[str, Any]) -> tuple[dict[str, EncodedStream], dict[str, Any]]:
    """Flow fields of one video: (num_frames - 1) u images and as many v images."""
    h5 = _frames_file(payload["frames"])
    count, height, width = payload["num_images"], payload["height"], payload["width"]
    if count < 2:
        raise ValueError(f"too short for flow: {count} frame(s)")
    encoded = read_encoded_images(h5, FRAME_STREAM, payload["first_image"], count)
    flows = _flow_function(payload["method"], payload["dis_preset"], payload["device"])
    u_images, v_images = [], []
    for start in range(0, count - 1, PAIRS_AT_ONCE):
        # Only this chunk's frames are decoded (its last one again as the next chunk's
        # first): the decoded frames a worker holds do not grow with the video's length.
        frames = np.stack([decode_gray(data, payload["frames_codec"], height, width)
                           for data in encoded[start:start + PAIRS_AT_ONCE + 1]])
        if payload["flow_size"] is not None:
            frames = resized(frames, payload["flow_size"])
        fields = np.stack(list(flows(frames)))
        if payload["flow_size"] is not None:
            fields = resized(fields, (height, width))
        for field in fields:
            u, v = cv2.split(quantise_flow(field, payload["bound"]))
            u_images.append(encode_image(u, payload["codec"], payload["jpeg_quality"]))
            v_images.append(encode_image(v, payload["codec"], payload["jpeg_quality"]))
    return {FLOW_STREAMS["u"]: pack_images(u_images),
            FLOW_STREAMS["v"]: pack_images(v_images)}, {}


def _merge(table: VideoTable, frames_failures: list[Failure], missing: list[str],
           staging: StagingArea, output: Path, key: str, settings: ComputeFlowConfig,
           context: RunContext, inputs: list[dict[str, Any]], started: str) -> None:
    rows, memberships = [], []
    failures = list(frames_failures)
    with write_artifact(output, KIND_FLOW, key) as h5:
        digest = hashlib.blake2b(digest_size=16)
        writers = {name: ImageStreamWriter(h5, name, settings.codec, 1, digest)
                   for name in FLOW_STREAMS.values()}
        context.progress.start("merging videos", len(table))
        for position in range(len(table)):
            context.progress.advance()
            row = table.row(position)
            streams, meta = staging.read(position)
            if "failure" in meta:
                failures.append(Failure(row["video_id"], row["relpath"], meta["failure"]))
                continue
            firsts = [writers[name].append(*streams[name]) for name in FLOW_STREAMS.values()]
            row.update(first_image=firsts[0], num_images=len(streams[FLOW_STREAMS["u"]][1]) - 1)
            rows.append(row)
            memberships.append(tuple(table.splits[position]))
        context.progress.finish()
        write_video_table(h5, VideoTable.from_rows(rows, table.class_names, table.split_names,
                                                   memberships))
        write_failures(h5, failures, missing)
        write_content_digest(h5, digest.hexdigest())
        write_flow_settings(h5, settings.bound, settings.method, settings.reference_short_side)
        write_provenance(h5, Provenance(context.command, context.config, __version__, inputs,
                                        started, now()))


def run(
    settings: ComputeFlowConfig, data: DataConfig, workspace: WorkspaceConfig, *,
    context: RunContext | None = None, frames: Path | None = None, out: Path | None = None,
    shard: Shard | None = None, compute_settings: ComputeConfig | None = None,
) -> VideoStageResult:
    """Compute flow for every video of `frames` (default: the workspace's frames.h5). tvl1
    runs on `compute_settings.device`; on a GPU the videos go through it one at a time in
    this process, each video's pairs batched."""
    compute_settings = compute_settings or ComputeConfig()
    context = (context or RunContext()).running(compute_flow=settings, data=data,
                                                workspace=workspace, compute=compute_settings)
    shard = shard or Shard()
    check_flow_method(settings.method)
    device = flow_device(settings.method, compute_settings)
    started = now()
    frames = Path(frames) if frames is not None else frames_path(workspace, data)
    with open_artifact(frames, KIND_FRAMES) as h5:
        table = read_video_table(h5)
        frames_failures, missing = read_failures(h5)
        frames_codec = stream_codec(h5, FRAME_STREAM)
        frames_digest = read_content_digest(h5)
    output = Path(out) if out is not None else flow_path(workspace, data)
    check_output(output, KIND_FLOW, [frames])
    key = fingerprint({"stage": "compute-flow", "settings": output_relevant(settings),
                       "frames": frames_digest})
    payloads = []
    for i in range(len(table)):
        height, width = int(table.columns["height"][i]), int(table.columns["width"][i])
        flow_size, bound = flow_geometry(settings, height, width)
        payloads.append(
            {"frames": str(frames.resolve()), "frames_codec": frames_codec,
             "first_image": int(table.columns["first_image"][i]),
             "num_images": int(table.columns["num_images"][i]), "height": height,
             "width": width, "device": device, "flow_size": flow_size, "bound": bound,
             **{k: getattr(settings, k) for k in ("method", "dis_preset", "codec",
                                                  "jpeg_quality")}})
    inputs = [{"path": str(frames), "size": frames.stat().st_size,
               "checksum": frames_digest, "checksum_of": "content"}]

    def merge(staging: StagingArea) -> None:
        _merge(table, frames_failures, missing, staging, output, key, settings, context,
               inputs, started)

    pixels = [float(p["num_images"] * p["height"] * p["width"]) for p in payloads]
    return run_video_stage("compute-flow", output, key, payloads, flow_video, merge, shard,
                           worker_processes(settings.workers) if device == "cpu" else 1,
                           context, f"{settings.method} flow", pixels)
