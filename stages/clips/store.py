"""Random access to the frames of frames.h5 and the flow of flow.h5, by video and frame index.

The HDF5 files are opened lazily, on first read, so a `ClipStore` can be handed to DataLoader
workers and each worker opens its own handle after the fork (h5py handles must not be shared).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.flow.methods import dequantise_flow, quantise_flow
from stages.io.artifacts import (
    FLOW_STREAMS,
    FRAME_STREAM,
    KIND_FLOW,
    KIND_FRAMES,
    ArtifactFile,
    ImageStream,
    VideoTable,
    open_artifact,
    read_content_digest,
    read_flow_settings,
    read_provenance,
    read_video_table,
    reopen_artifact,
    stream_codec,
)
from stages.io.images import decode_image
from stages.runtime.errors import ArtifactError, SlicError


@dataclass
class StreamLayout:
    """Where one video's images live in an artifact's image stream."""

    first_image: np.ndarray  # (N,) int64
    num_images: np.ndarray  # (N,) int32
    codec: str


def _layout(h5: ArtifactFile, table: VideoTable, stream: str) -> StreamLayout:
    return StreamLayout(table.columns["first_image"].astype(np.int64),
                        table.columns["num_images"].astype(np.int32),
                        stream_codec(h5, stream))


class ClipStore:
    """Decodes clips: `rgb(video, frames)` (T, H, W, 3) and `flow(video, frames)` (T, H, W).

    `video` indexes the frames.h5 video table; `frames` is a (T,) int array of frame indices.
    Flow for frame t is the flow from t to t + 1 (the last frame reuses the previous field).
    """

    def __init__(self, frames_path: Path, flow_path: Path | None = None) -> None:
        self.frames_path, self.flow_path = Path(frames_path), flow_path
        with open_artifact(self.frames_path, KIND_FRAMES) as h5:
            self.table = read_video_table(h5)
            self.frames_layout = _layout(h5, self.table, FRAME_STREAM)
            self.frames_digest = read_content_digest(h5)
        self.flow_layout: StreamLayout | None = None
        self.flow_bound = 0.0
        self.flow_rows = np.zeros(0, dtype=np.int64)
        if flow_path is not None:
            self._index_flow(Path(flow_path))
        self._handles: dict[str, ArtifactFile] = {}
        self._streams: dict[tuple[str, str], ImageStream] = {}

    def _index_flow(self, path: Path) -> None:
        with open_artifact(path, KIND_FLOW) as h5:
            flow_table = read_video_table(h5)
            self.flow_layout = _layout(h5, flow_table, FLOW_STREAMS["u"])
            self.flow_bound = read_flow_settings(h5)["bound"]
            sources = [entry.get("checksum") for entry in read_provenance(h5).get("inputs", [])
                       if entry.get("checksum_of") == "content"]
        if sources and self.frames_digest and self.frames_digest not in sources:
            raise ArtifactError(f"{path} was computed from other frames than "
                                f"{self.frames_path} (another dataset, or frames extracted "
                                "again); run slic compute-flow for these frames")
        position = {vid: i for i, vid in enumerate(flow_table.columns["video_id"])}
        self.flow_rows = np.array([position.get(v, -1) for v in self.table.columns["video_id"]],
                                  dtype=np.int64)
        if (self.flow_rows < 0).all():
            raise ArtifactError(f"{path} shares no video with {self.frames_path}; compute flow "
                                "from these frames (slic compute-flow)")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_streams"] = {}, {}
        return state

    def _file(self, key: str, path: Path) -> ArtifactFile:
        if key not in self._handles:
            self._handles[key] = reopen_artifact(path)
        return self._handles[key]

    def _stream(self, h5: ArtifactFile, stream: str) -> ImageStream:
        """Image stream `stream` of `h5`, looked up once per process."""
        key = (h5.filename, stream)
        if key not in self._streams:
            self._streams[key] = ImageStream(h5, stream)
        return self._streams[key]

    def has_flow(self, video: int) -> bool:
        """Whether flow.h5 holds at least one flow field for `video` (a frames-table row)."""
        return self.flow_layout is not None and self.flow_rows[video] >= 0 and \
            self.flow_layout.num_images[self.flow_rows[video]] > 0

    def frame_count(self, video: int) -> int:
        """Number of frames of `video` (a frames-table row) stored in frames.h5."""
        return int(self.frames_layout.num_images[video])

    def _decode_run(self, h5: ArtifactFile, stream: str, layout: StreamLayout, row: int,
                    frames: np.ndarray, channels: int) -> np.ndarray:
        """Decode images `frames` of video row `row`, reading the covering range once."""
        low, high = int(frames.min()), int(frames.max())
        encoded = self._stream(h5, stream).read(int(layout.first_image[row]) + low,
                                                high - low + 1)
        height, width = int(self.table.columns["height"][row]), int(
            self.table.columns["width"][row])
        decoded: dict[int, np.ndarray] = {}
        images = []
        for index in frames.tolist():
            if index not in decoded:
                try:
                    decoded[index] = decode_image(encoded[index - low], layout.codec, height,
                                                  width, channels)
                except SlicError:
                    video = self.table.columns["video_id"][row]
                    raise ArtifactError(
                        f"{h5.filename}: image {index} of video {video} ({stream}) cannot be "
                        "decoded, the file is damaged; make it again with --force") from None
            images.append(decoded[index])
        return np.stack(images)

    def rgb(self, video: int, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB frames of `video`."""
        h5 = self._file("frames", self.frames_path)
        return self._decode_run(h5, FRAME_STREAM, self.frames_layout, video, frames, 3)

    def flow(self, video: int, frames: np.ndarray, channel: str = "u") -> np.ndarray:
        """Flow images (0..255, 128 = no motion) for the frames of `video`: (T, H, W) uint8 for
        one channel (u, v or magnitude), (T, H, W, 3) uint8 for "uvm" (u, v, magnitude)."""
        assert self.flow_layout is not None and self.flow_path is not None
        row = int(self.flow_rows[video])
        count = int(self.flow_layout.num_images[row])
        fields = np.minimum(frames, count - 1)
        h5 = self._file("flow", self.flow_path)
        stored = {name: self._decode_run(h5, FLOW_STREAMS[name], self.flow_layout, row, fields, 1)
                  for name in (("u", "v") if channel in ("magnitude", "uvm") else (channel,))}
        if channel in ("u", "v"):
            return stored[channel]
        u = dequantise_flow(stored["u"], self.flow_bound)
        v = dequantise_flow(stored["v"], self.flow_bound)
        # Magnitude in 0..bound mapped onto the same 0..255 range as a signed component.
        magnitude = np.sqrt(u * u + v * v) * 2.0 - self.flow_bound
        flat = magnitude.astype(np.float32).reshape(len(frames), -1)
        quantised = quantise_flow(flat, self.flow_bound).reshape(magnitude.shape)
        if channel == "magnitude":
            return quantised
        return np.stack([stored["u"], stored["v"], quantised], axis=-1)
