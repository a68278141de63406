"""The space a merge needs is estimated from above, and a device found full during the merge
ends in one DiskFull line: no output, no temporary, every staged part kept for the rerun."""

import errno
import hashlib

import numpy as np
import pytest

from stages.extract_frames import ExtractFramesConfig, run
from stages.io.artifacts import (
    ImageStreamWriter,
    Provenance,
    VideoTable,
    video_artifact_space,
    write_artifact,
    write_failures,
    write_provenance,
    write_video_table,
)
from stages.io.artifacts import core as artifacts_core
from stages.io.staging import StagingArea
from stages.io.video import write_video
from stages.runtime.errors import DiskFull
from stages.runtime.sections import DataConfig, WorkspaceConfig
from stages.runtime.workspace import frames_path

ROW = {"class_name": "Walk", "label": 0, "frame_count": 1, "fps": 25.0, "src_fps": 25.0,
       "src_width": 320, "src_height": 240, "width": 64, "height": 48, "file_size": 1,
       "checksum": "c" * 32, "num_images": 1, "note": "decoded 1 of ~9 frames: cut" * 3}


def stage_parts(staging: StagingArea, videos: int, images: int, image_bytes: int,
                streams: tuple[str, ...]) -> None:
    """`videos` parts of `images` random images of about `image_bytes` each per stream."""
    rng = np.random.default_rng(videos)
    staging.prepare()
    for position in range(videos):
        parts = {}
        for name in streams:
            sizes = rng.integers(image_bytes // 2, image_bytes * 3 // 2 + 1, images)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            parts[name] = (rng.integers(0, 256, int(offsets[-1]), dtype=np.uint8), offsets)
        staging.write(position, parts, {"failure": "ffmpeg: bad"} if position % 5 == 4 else {})


def merge(staging: StagingArea, videos: int, streams: tuple[str, ...], output) -> None:
    """What both data stages' merges write: streams, index, failures, provenance."""
    rows, failures = [], []
    with write_artifact(output, "flow", "key") as h5:
        writers = {n: ImageStreamWriter(h5, n, "jpeg", 1, hashlib.blake2b()) for n in streams}
        for position in range(videos):
            parts, meta = staging.read(position)
            if "failure" in meta:
                failures.append(artifacts_core.Failure(f"v{position}", "x/y.avi", "bad " * 20))
                continue
            first = [writers[n].append(*parts[n]) for n in streams][0]
            rows.append({**ROW, "video_id": f"video_{position:06d}",
                         "relpath": f"Walk/video_{position:06d}_{'x' * 60}.avi",
                         "first_image": first})
        write_video_table(h5, VideoTable.from_rows(rows, ["Walk"], ["s"], [(1,)] * len(rows)))
        write_failures(h5, failures, ["gone.avi"] * 3)
        write_provenance(h5, Provenance("slic compute-flow", {"a": "b" * 2000}, "1", [], "t"))


@pytest.mark.parametrize("videos, images, image_bytes, streams", [
    (1, 3, 100, ("u", "v")),  # tiny: the chunks are nearly all padding
    (2, 1, (1 << 20) + 1, ("u", "v")),  # just over one chunk per stream (the case)
    (300, 3, 300, ("images",)),  # many short videos: the index dominates
    (4, 600, 900, ("u", "v")),  # many images: several offsets chunks
])
def test_the_estimate_is_at_least_the_merged_size(tmp_path, videos, images, image_bytes,
                                                   streams):
    output = tmp_path / "out.h5"
    staging = StagingArea(output, "f" * 32)
    stage_parts(staging, videos, images, image_bytes, streams)
    found, meta_bytes = staging.contents()
    assert set(found) == set(streams)
    merge(staging, videos, streams, output)
    actual = output.stat().st_size
    estimate = video_artifact_space(found, videos, meta_bytes) - artifacts_core.APPEND_MARGIN
    old_estimate = sum(part.stat().st_size for part in staging.folder.glob("*.npz"))
    assert actual <= estimate <= 1.5 * actual + (2 << 20), (actual, estimate)
    if image_bytes > 1 << 20:
        assert old_estimate < actual  # what the parts' size said: too little


@pytest.fixture
def small_dataset(tmp_path):
    root = tmp_path / "data"
    (root / "Walk").mkdir(parents=True)
    for i in range(3):
        write_video(root / "Walk" / f"v{i}.avi", np.full((4, 48, 64, 3), 40 * i, np.uint8), 25)
    return DataConfig(dataset="folder", root=str(root)), WorkspaceConfig(root=str(tmp_path / "ws"))


def full_disk(kind: str):
    """An append that finds the device full, as the OS (OSError) or HDF5 (RuntimeError)
    reports it."""
    def append(self, data, offsets):
        if kind == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("Can't write data (file write failed: errno = 28, error message = "
                           "'No space left on device')")
    return append


@pytest.mark.parametrize("kind", ["oserror", "runtimeerror"])
def test_a_full_disk_during_the_merge_is_one_line_and_keeps_the_parts(small_dataset,
                                                                       monkeypatch, kind):
    data, workspace = small_dataset
    settings = ExtractFramesConfig(short_side=48, workers=1)
    monkeypatch.setattr(ImageStreamWriter, "append", full_disk(kind))
    with pytest.raises(DiskFull) as error:
        run(settings, data, workspace)
    message = str(error.value)
    output = frames_path(workspace, data)
    assert "\n" not in message and "no space left" in message
    assert f"{output.parent}/.{output.name}.writing-" in message
    folder = output.parent
    assert not any(p.name.endswith(".h5") or ".writing-" in p.name for p in folder.iterdir())
    parts = list(folder.glob(".*.parts/*/*.npz"))
    assert len(parts) == 3  # the inputs of the merge are intact
    monkeypatch.undo()
    result = run(settings, data, workspace)  # the rerun merges what was kept
    assert result.status == "written" and result.counts.reused == 3


def test_the_writer_stops_before_hdf5_meets_a_full_device(small_dataset, monkeypatch):
    data, workspace = small_dataset
    monkeypatch.setattr(artifacts_core, "free_bytes", lambda path: 1 << 20)
    with pytest.raises(DiskFull, match="no space left on the device while writing"):
        run(ExtractFramesConfig(short_side=48, workers=1), data, workspace)
