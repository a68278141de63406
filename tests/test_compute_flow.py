from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stages.compute_flow import ComputeFlowConfig, flow_device, run
from stages.flow.methods import FLOW_METHODS, dequantise_flow, make_video_flow, quantise_flow
from stages.io.artifacts import open_artifact, read_encoded_images, read_video_table
from stages.io.images import decode_image
from stages.per_video.jobs import Shard
from stages.runtime.errors import ArtifactError, ConfigError, SlicError
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from tests.helpers import assert_same_contents, write_tiny_frames

DATA = DataConfig(dataset="synthetic")


@pytest.fixture(scope="module")
def frames_workspace(training_workspace):
    """The session's workspace: its frames.h5 (short side 48) is only read here; every flow.h5
    these tests make goes to their own tmp_path."""
    return WorkspaceConfig(root=str(training_workspace))


# The test frames are tiny: flow in their own pixels (the reference size is tested below).
OWN = ComputeFlowConfig(reference_short_side=None)


def flow_of(workspace, tmp_path, settings=OWN, **kwargs):
    return run(settings, DATA, workspace, out=tmp_path / "flow.h5", **kwargs)


def test_quantisation_convention():
    flow = np.array([[[-25.0, -20.0], [0.0, 20.0], [5.0, 100.0]]], np.float32)
    stored = quantise_flow(flow, 20.0)
    assert stored.tolist() == [[[0, 0], [128, 255], [159, 255]]]
    assert np.allclose(dequantise_flow(stored, 20.0)[0, 2, 0], 5.0, atol=20 / 255)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_counts_and_direction(frames_workspace, tmp_path, method):
    result = flow_of(frames_workspace, tmp_path, replace(OWN, method=method))
    assert result.status == "written"
    with open_artifact(frames_workspace.root + "/synthetic/frames.h5") as h5:
        frame_table = read_video_table(h5)
    with open_artifact(result.output, "flow") as h5:
        table = read_video_table(h5)
        assert h5.attrs["bound"] == 20.0
        assert list(table.columns["num_images"]) == list(frame_table.columns["frame_count"] - 1)
        means = {}
        for index in range(len(table)):
            row = table.row(index)
            u = [decode_image(e, "jpeg", row["height"], row["width"], 1) for e in
                 read_encoded_images(h5, "flow_u", row["first_image"], row["num_images"])]
            v = [decode_image(e, "jpeg", row["height"], row["width"], 1) for e in
                 read_encoded_images(h5, "flow_v", row["first_image"], row["num_images"])]
            assert u[0].shape == (row["height"], row["width"])
            means.setdefault(row["class_name"], []).append(
                (dequantise_flow(np.stack(u), 20).mean(), dequantise_flow(np.stack(v), 20).mean()))
    # A slide goes left or right (drawn per video); rise and fall go up and down.
    slide_speed = np.mean([abs(u) for u, _ in means["Slide"]])
    rise, fall = np.mean(means["Rise"], 0), np.mean(means["Fall"], 0)
    assert slide_speed > 0.05
    assert fall[1] > 0.05 > -0.05 > rise[1]
    assert abs(rise[0]) < 0.05 and abs(fall[0]) < 0.05


@pytest.mark.slow
def test_cache_resume_and_settings_change(frames_workspace, tmp_path):
    partial = flow_of(frames_workspace, tmp_path, shard=Shard(0, 2))
    assert partial.status == "shard done"
    resumed = flow_of(frames_workspace, tmp_path)
    assert (resumed.counts.reused, resumed.counts.processed) == (12, 12)
    assert flow_of(frames_workspace, tmp_path).status == "up to date"
    whole = run(OWN, DATA, frames_workspace, out=tmp_path / "whole.h5")
    assert_same_contents(resumed.output, whole.output)
    rebound = flow_of(frames_workspace, tmp_path, replace(OWN, bound=10.0))
    assert rebound.counts.processed == 24


def test_missing_frames_names_the_stage_to_run(tmp_path):
    with pytest.raises(ArtifactError, match="run slic extract-frames first"):
        run(OWN, DATA, WorkspaceConfig(root=str(tmp_path)))


@pytest.mark.skipif(hasattr(cv2, "optflow"), reason="OpenCV contrib is installed here")
def test_tvl1_opencv_without_contrib_says_how_to_get_it(tiny_frames, tmp_path):
    with pytest.raises(SlicError, match="pip install opencv-contrib-python"):
        flow_of(WorkspaceConfig(root=str(tmp_path)), tmp_path,
                replace(OWN, method="tvl1-opencv"), frames=tiny_frames)


def test_video_flow_batches_tvl1_and_equals_pair_by_pair():
    smooth = cv2.GaussianBlur(np.random.default_rng(0).uniform(0, 255, (40, 56)), (0, 0), 2)
    frames = np.stack([np.roll(smooth, step, axis=1) for step in range(4)]).astype(np.uint8)
    for method in ("tvl1", "dis"):
        fields = make_video_flow(method, "medium")(frames)
        assert fields.shape == (3, 40, 56, 2) and fields.dtype == np.float32
        pair = FLOW_METHODS[method]("medium")
        for index in range(3):
            np.testing.assert_allclose(fields[index], pair(frames[index], frames[index + 1]),
                                       atol=1e-5)
        assert abs(np.median(fields[..., 0]) - 1) < 0.1  # one pixel a frame to the right
    assert make_video_flow("tvl1", "medium")(frames[:1]).shape == (0, 40, 56, 2)


def test_tvl1_in_worker_processes(tmp_path):
    # Flat frames (a grey level each): no gradient, so TV-L1 stops at once; the test is about
    # the torch method running batched in forked workers.
    frames = write_tiny_frames(tmp_path / "frames.h5", ramp=True)
    result = flow_of(WorkspaceConfig(root=str(tmp_path)), tmp_path,
                     replace(OWN, method="tvl1", workers=2), frames=frames)
    assert result.status == "written" and result.counts.failed == 0
    with open_artifact(result.output, "flow") as h5:
        assert h5.attrs["method"] == "tvl1"
        table = read_video_table(h5)
        assert list(table.columns["num_images"]) == [11, 8, 15, 5, 19, 10, 13, 7]
        u = read_encoded_images(h5, "flow_u", 0, 1)[0]
        assert (decode_image(u, "jpeg", 24, 32, 1) == 128).all()  # no motion


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machines without CUDA")
def test_flow_device_is_checked_before_any_work(tiny_frames, tmp_path):
    space = WorkspaceConfig(root=str(tmp_path))
    with pytest.raises(ConfigError, match="no CUDA device"):
        flow_of(space, tmp_path, replace(OWN, method="tvl1"), frames=tiny_frames,
                compute_settings=ComputeConfig(device="cuda"))
    with pytest.raises(ConfigError, match="needs --method tvl1"):
        flow_of(space, tmp_path, replace(OWN, method="dis"), frames=tiny_frames,
                compute_settings=ComputeConfig(device="cuda:0"))
    assert not any(tmp_path.glob("**/flow.h5"))
    assert flow_device("tvl1", ComputeConfig(device="auto")) == "cpu"
    assert flow_device("dis", ComputeConfig(device="auto")) == "cpu"


def test_flow_is_computed_at_the_reference_size_or_its_bound_scaled():
    from stages.compute_flow import flow_geometry

    official = ComputeFlowConfig()  # bound 20 px at short side 240, computed there
    assert flow_geometry(official, 128, 170) == ((240, 319), 20.0)
    assert flow_geometry(official, 240, 320) == (None, 20.0)  # already the reference size
    assert flow_geometry(official, 480, 360) == ((320, 240), 20.0)  # portrait: short side 360
    fast = ComputeFlowConfig(resolution="stored")
    assert flow_geometry(fast, 128, 170) == (None, pytest.approx(20 * 128 / 240))
    own = ComputeFlowConfig(reference_short_side=None)
    assert flow_geometry(own, 128, 170) == (None, 20.0)


def moving_texture(short: int, step: float, count: int = 6) -> np.ndarray:
    """(T, short, 4/3 short, 3) uint8 frames of a smooth texture sliding `step` px a frame to
    the right (rendered exactly at each position)."""
    y, x = np.mgrid[0:short, 0:short * 4 // 3].astype(np.float64)
    frames = []
    for index in range(count):
        shifted = x - step * index
        value = (np.sin(shifted / 3.1) + np.sin(y / 4.3 + shifted / 7.7)
                 + np.cos((shifted + y) / 5.9))
        frames.append(np.repeat((127 + 40 * value)[..., None], 3, axis=2))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("reference, resolution, expected_level", [
    (None, "reference", 127.5 + 2 / 20 * 127.5),
    (96, "reference", 127.5 + 4 / 20 * 127.5),
    (96, "stored", 127.5 + 4 / 20 * 127.5),
])
def test_motion_is_stored_in_reference_pixels(tmp_path, reference, resolution, expected_level):
    """2 px a frame in 48-px frames is 4 px in 96-px ones: with reference_short_side 96 it is
    stored as the official pipeline stores 4 px (a fifth of the range above 127.5), whether
    the flow is computed on the frames enlarged to 96 px or on the stored ones."""
    from stages.clips.store import ClipStore
    from tests.helpers import TinyVideo, write_frames

    root = tmp_path / "ws"
    write_frames(root / "synthetic" / "frames.h5",
                 [TinyVideo("v_Slide_g01_c01", 0, moving_texture(48, 2.0))], ["Slide"])
    run(ComputeFlowConfig(workers=1, codec="png", reference_short_side=reference,
                          resolution=resolution),
        DataConfig(dataset="synthetic"), WorkspaceConfig(root=str(root)))
    store = ClipStore(root / "synthetic" / "frames.h5", root / "synthetic" / "flow.h5")
    u = store.flow(0, np.arange(5), "u")
    assert u.shape == (5, 48, 64)  # stored at the frames' size whatever size it was computed at
    assert float(np.median(u[:, 8:-8, 8:-8])) == pytest.approx(expected_level, abs=3.0)


def test_a_long_video_is_decoded_a_chunk_at_a_time_with_the_same_flow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker holds at most PAIRS_AT_ONCE + 1 decoded frames, whatever the video's length,
    and the flow is the same as with the whole video in one chunk."""
    import stages.compute_flow as compute_flow

    frames = tmp_path / "frames.h5"
    write_tiny_frames(frames, frame_counts=(23, 7, 6, 2))  # 6: exactly one chunk of 5 pairs
    settings = ComputeFlowConfig(workers=1, codec="png", reference_short_side=48)
    whole = run(settings, DATA, WorkspaceConfig(str(tmp_path)), frames=frames,
                out=tmp_path / "whole.h5")
    monkeypatch.setattr(compute_flow, "PAIRS_AT_ONCE", 5)
    held = []
    enlarge = compute_flow.resized

    def recorded(images, size):
        held.append(len(images))
        return enlarge(images, size)

    monkeypatch.setattr(compute_flow, "resized", recorded)
    chunked = run(settings, DATA, WorkspaceConfig(str(tmp_path)), frames=frames,
                  out=tmp_path / "chunked.h5")
    assert held and max(held) <= 6  # frames in, fields out: a chunk at a time
    assert whole.num_images == chunked.num_images == 22 + 6 + 5 + 1
    assert_same_contents(tmp_path / "whole.h5", tmp_path / "chunked.h5")


def test_flow_workers_default_to_every_usable_core(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import stages.compute_flow as compute_flow
    from stages.runtime import cores

    frames = tmp_path / "frames.h5"
    write_tiny_frames(frames, frame_counts=(3, 4))
    monkeypatch.setattr(cores, "usable_cores", lambda: 3)
    asked = []
    run_stage = compute_flow.run_video_stage

    def recorded(*arguments: object) -> object:
        asked.append(arguments[7])  # the workers argument
        return run_stage(*arguments)

    monkeypatch.setattr(compute_flow, "run_video_stage", recorded)
    run(ComputeFlowConfig(reference_short_side=None), DATA, WorkspaceConfig(str(tmp_path)),
        frames=frames, out=tmp_path / "flow.h5")
    run(ComputeFlowConfig(reference_short_side=None, workers=1), DATA,
        WorkspaceConfig(str(tmp_path)), frames=frames, out=tmp_path / "flow-1.h5")
    assert asked == [3, 1]
