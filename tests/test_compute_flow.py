import cv2
import numpy as np
import pytest

from stages.compute_flow import ComputeFlowConfig, run
from stages.errors import ArtifactError, SlicError
from stages.flow_methods import dequantise_flow, quantise_flow
from stages.io.artifacts import open_artifact, read_encoded_images, read_video_table
from stages.io.images import decode_image
from stages.per_video import Shard
from stages.shared_config import DataConfig, WorkspaceConfig
from tests.helpers import assert_same_contents

DATA = DataConfig(dataset="synthetic")


@pytest.fixture(scope="module")
def frames_workspace(training_workspace):
    """The session's workspace: its frames.h5 (short side 48) is only read here; every flow.h5
    these tests make goes to their own tmp_path."""
    return WorkspaceConfig(root=str(training_workspace))


def flow_of(workspace, tmp_path, settings=ComputeFlowConfig(), **kwargs):
    return run(settings, DATA, workspace, out=tmp_path / "flow.h5", **kwargs)


def test_quantisation_convention():
    flow = np.array([[[-25.0, -20.0], [0.0, 20.0], [5.0, 100.0]]], np.float32)
    stored = quantise_flow(flow, 20.0)
    assert stored.tolist() == [[[0, 0], [128, 255], [159, 255]]]
    assert np.allclose(dequantise_flow(stored, 20.0)[0, 2, 0], 5.0, atol=20 / 255)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_counts_and_direction(frames_workspace, tmp_path, method):
    result = flow_of(frames_workspace, tmp_path, ComputeFlowConfig(method=method))
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
    whole = run(ComputeFlowConfig(), DATA, frames_workspace, out=tmp_path / "whole.h5")
    assert_same_contents(resumed.output, whole.output)
    rebound = flow_of(frames_workspace, tmp_path, ComputeFlowConfig(bound=10.0))
    assert rebound.counts.processed == 24


def test_missing_frames_names_the_stage_to_run(tmp_path):
    with pytest.raises(ArtifactError, match="run slic extract-frames first"):
        run(ComputeFlowConfig(), DATA, WorkspaceConfig(root=str(tmp_path)))


@pytest.mark.skipif(hasattr(cv2, "optflow"), reason="OpenCV contrib is installed here")
def test_tvl1_without_contrib_says_how_to_get_it(tiny_frames, tmp_path):
    with pytest.raises(SlicError, match="pip install opencv-contrib-python"):
        flow_of(WorkspaceConfig(root=str(tmp_path)), tmp_path, ComputeFlowConfig(method="tvl1"),
                frames=tiny_frames)
