"""ClipStore on a hand-written frames.h5 and flow.h5 whose every image is one flat level that
spells its video and index: which flow field serves which frame, how the flow table is matched
to the frames table by video id, how the magnitude channel maps speed, and which flow files are
refused."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from stages.clips.store import ClipStore
from stages.flow.methods import dequantise_flow
from stages.io.artifacts import (
    FLOW_STREAMS,
    KIND_FLOW,
    ImageStreamWriter,
    Provenance,
    VideoTable,
    open_artifact,
    read_content_digest,
    write_artifact,
    write_failures,
    write_flow_settings,
    write_provenance,
    write_video_table,
)
from stages.io.images import encode_image
from stages.io.staging import pack_images
from stages.runtime.errors import ArtifactError
from tests.helpers import TinyVideo, write_frames

HEIGHT, WIDTH, FRAMES, BOUND = 4, 6, 5, 20.0


def rgb_level(video: int, frame: int) -> int:
    return 40 * video + 5 * frame


def u_level(video: int, field: int) -> int:
    return 100 + 30 * video + 7 * field


def v_level(video: int, field: int) -> int:
    return 90 - 20 * video + 3 * field


def _flat(level: int, channels: int = 0) -> np.ndarray:
    shape = (HEIGHT, WIDTH, channels) if channels else (HEIGHT, WIDTH)
    return np.full(shape, level, np.uint8)


def write_level_frames(path: Path) -> Path:
    """frames.h5 of videos v0, v1, v2: FRAMES flat frames each, frame f of video i at
    rgb_level(i, f)."""
    videos = [TinyVideo(f"v{i}", 0, np.stack([_flat(rgb_level(i, f), 3) for f in range(FRAMES)]))
              for i in range(3)]
    return write_frames(path, videos, ["Class0"])


def write_level_flow(path: Path, videos: tuple[int, ...],
                     provenance: dict | None = None, fields: dict[int, int] | None = None
                     ) -> Path:
    """flow.h5 of `videos` (in that order), FRAMES - 1 fields each: field f of video i a flat
    u of u_level(i, f) and v of v_level(i, f), bound BOUND; `provenance` replaces the default
    JSON (which records no input); `fields` gives some videos fewer fields."""
    rows = []
    with write_artifact(path, KIND_FLOW, "tests") as h5:
        digest = hashlib.blake2b(digest_size=16)
        writers = {name: ImageStreamWriter(h5, stream, "raw", 1, digest)
                   for name, stream in FLOW_STREAMS.items()}
        for video in videos:
            count = (fields or {}).get(video, FRAMES - 1)
            images = {name: [encode_image(_flat(level(video, f)), "raw") for f in range(count)]
                      for name, level in (("u", u_level), ("v", v_level))}
            firsts = [writers[name].append(*pack_images(images[name])) for name in ("u", "v")]
            rows.append({"video_id": f"v{video}", "relpath": f"Class0/v{video}.avi",
                         "class_name": "Class0", "label": 0, "frame_count": FRAMES,
                         "fps": 25.0, "src_fps": 25.0, "src_width": WIDTH,
                         "src_height": HEIGHT, "width": WIDTH, "height": HEIGHT,
                         "file_size": 0, "checksum": "", "first_image": firsts[0],
                         "num_images": count})
        write_video_table(h5, VideoTable.from_rows(rows, ["Class0"], ["1"],
                                                   [(1,)] * len(rows)))
        write_failures(h5, [], [])
        write_flow_settings(h5, BOUND, "dis", None)
        if provenance is None:
            write_provenance(h5, Provenance("tests", {}, "test", [], "0"))
        else:
            h5.create_dataset("provenance", data=json.dumps(provenance))
    return path


def _digest(path: Path) -> str:
    with open_artifact(path) as h5:
        return read_content_digest(h5)


@pytest.fixture(scope="module")
def frames_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_level_frames(tmp_path_factory.mktemp("levels") / "frames.h5")


@pytest.fixture(scope="module")
def flow_path(frames_path: Path) -> Path:
    """Flow of all three videos, its provenance naming these frames' content digest."""
    same = {"command": "tests",
            "inputs": [{"checksum": _digest(frames_path), "checksum_of": "content"}]}
    return write_level_flow(frames_path.parent / "flow.h5", (0, 1, 2), provenance=same)


def _levels(images: np.ndarray) -> list[int]:
    """The flat level of each image, checking it is flat."""
    flat = images.reshape(len(images), -1)
    assert (flat == flat[:, :1]).all()
    return flat[:, 0].tolist()


def test_flow_rows_are_matched_to_frames_rows_by_video_id(frames_path: Path, tmp_path: Path):
    """flow.h5 holds v2 then v0 and lacks v1: each frames row reads its own video's flow. Its
    provenance records no inputs, so it cannot show a mismatch and is accepted."""
    flow = write_level_flow(tmp_path / "flow.h5", (2, 0), provenance={"command": "tests"})
    store = ClipStore(frames_path, flow)
    assert [store.has_flow(i) for i in range(3)] == [True, False, True]
    frames = np.array([0, 2, 1])
    for video in (0, 2):
        assert _levels(store.flow(video, frames, "u")) == [u_level(video, f) for f in frames]
        assert _levels(store.flow(video, frames, "v")) == [v_level(video, f) for f in frames]
    assert _levels(store.rgb(2, frames)[..., 0]) == [rgb_level(2, f) for f in frames]


def test_the_last_frame_reuses_the_last_flow_field(frames_path: Path, flow_path: Path):
    """Flow of frame t is t -> t + 1: the last frame has none and takes the field before. The
    default channel is u."""
    store = ClipStore(frames_path, flow_path)
    last = FRAMES - 1
    assert _levels(store.flow(1, np.array([last, last - 1, 0]), "u")) == [
        u_level(1, last - 1), u_level(1, last - 1), u_level(1, 0)]
    assert _levels(store.flow(1, np.array([2, last]))) == [u_level(1, 2), u_level(1, last - 1)]


def test_magnitude_maps_speed_zero_to_bound_onto_0_to_255(frames_path: Path, flow_path: Path):
    """The magnitude channel is |(u, v)| in pixels, 0 -> 0 and BOUND -> 255 (faster saturates);
    uvm stacks u, v and that magnitude."""
    store = ClipStore(frames_path, flow_path)
    frames = np.arange(FRAMES)
    for video in range(3):
        u, v = store.flow(video, frames, "u"), store.flow(video, frames, "v")
        speed = np.hypot(dequantise_flow(u, BOUND), dequantise_flow(v, BOUND)).astype(np.float64)
        expected = np.clip(np.rint(255 * speed / BOUND), 0, 255)
        magnitude = store.flow(video, frames, "magnitude")
        assert magnitude.dtype == np.uint8 and magnitude.shape == u.shape
        assert np.abs(magnitude.astype(np.float64) - expected).max() <= 1
        uvm = store.flow(video, frames, "uvm")
        assert uvm.shape == (*u.shape, 3)
        assert np.array_equal(uvm[..., 0], u) and np.array_equal(uvm[..., 1], v)
        assert np.array_equal(uvm[..., 2], magnitude)


def test_flow_of_other_frames_is_refused(frames_path: Path, tmp_path: Path):
    """A flow.h5 whose provenance names another frames content digest is refused, with the
    command that fixes it."""
    other = {"command": "tests", "inputs": [{"checksum": "0" * 32, "checksum_of": "content"}]}
    flow = write_level_flow(tmp_path / "flow.h5", (0, 1, 2), provenance=other)
    fix = r"other frames .* extracted again\); run slic compute-flow for these frames$"
    with pytest.raises(ArtifactError, match=fix):
        ClipStore(frames_path, flow)


def test_flow_sharing_no_video_is_refused(frames_path: Path, tmp_path: Path):
    """A flow.h5 of other videos is refused; one that shares a single video (at flow row 0)
    is not."""
    lone = TinyVideo("w0", 0, np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8))
    other_frames = write_frames(tmp_path / "other.h5", [lone], ["Class0"])
    flow = write_level_flow(tmp_path / "flow.h5", (0,))
    fix = r"shares no video with .*; compute flow from these frames \(slic compute-flow\)$"
    with pytest.raises(ArtifactError, match=fix):
        ClipStore(other_frames, flow)
    store = ClipStore(frames_path, flow)
    assert [store.has_flow(i) for i in range(3)] == [True, False, False]


def test_a_frames_file_given_as_flow_is_refused(frames_path: Path):
    with pytest.raises(ArtifactError, match="flow artifact is needed"):
        ClipStore(frames_path, frames_path)


def test_a_pickled_store_reads_the_same_frames(frames_path: Path, flow_path: Path):
    """A store that has read (so holds open HDF5 handles) pickles without them, as DataLoader
    workers need, and the copy opens its own and reads the same images."""
    store = ClipStore(frames_path, flow_path)
    frames = np.array([1, 3])
    rgb, u = store.rgb(1, frames), store.flow(1, frames, "u")
    copy = pickle.loads(pickle.dumps(store))
    assert np.array_equal(copy.rgb(1, frames), rgb)
    assert np.array_equal(copy.flow(1, frames, "u"), u)
    assert np.array_equal(store.rgb(1, frames), rgb)  # the original keeps working


def test_a_store_without_flow_has_no_flow(frames_path: Path):
    store = ClipStore(frames_path)
    assert [store.has_flow(i) for i in range(3)] == [False, False, False]
    assert [store.frame_count(i) for i in range(3)] == [FRAMES] * 3


def test_a_flow_file_given_as_frames_is_refused(flow_path: Path):
    with pytest.raises(ArtifactError, match="frames artifact is needed"):
        ClipStore(flow_path)


def test_a_video_has_flow_from_its_first_field_on(frames_path: Path, tmp_path: Path):
    """A video listed in flow.h5 with no field (too short for a pair) has no flow; one field
    is enough."""
    flow = write_level_flow(tmp_path / "flow.h5", (0, 1, 2), fields={0: 0, 1: 1})
    store = ClipStore(frames_path, flow)
    assert [store.has_flow(i) for i in range(3)] == [False, True, True]
    assert _levels(store.flow(1, np.array([0, 3]))) == [u_level(1, 0), u_level(1, 0)]
