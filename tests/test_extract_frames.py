import numpy as np
import pytest

from stages.extract_frames import ExtractFramesConfig, run
from stages.io.artifacts import open_artifact, read_encoded_images, read_failures, read_video_table
from stages.io.images import decode_image
from stages.io.video import decode_frames
from stages.per_video.jobs import Shard
from stages.runtime.context import RunContext
from stages.runtime.errors import SlicError
from stages.runtime.sections import DataConfig, WorkspaceConfig
from tests.helpers import assert_same_contents, copy_with_bad_videos
from tests.io.test_video import ramp_frames, write_video_starting_late

SETTINGS = ExtractFramesConfig(short_side=48, workers=2)


def extract(root, workspace, **kwargs):
    data = DataConfig(dataset="synthetic", root=str(root))
    return run(kwargs.pop("settings", SETTINGS), data, WorkspaceConfig(root=str(workspace)),
               **kwargs)


def unsharded(training_workspace):
    """frames.h5 of SETTINGS made in one piece: the session's (its workers differ, which does
    not change the output)."""
    return training_workspace / "synthetic" / "frames.h5"


@pytest.mark.slow
def test_frames_and_index_match_the_videos(synthetic_root, tmp_path):
    result = extract(synthetic_root, tmp_path)
    assert result.status == "written" and result.counts.processed == 24
    with open_artifact(result.output, "frames") as h5:
        table = read_video_table(h5)
        assert len(table) == 24
        assert table.class_names[:2] == ["Slide", "Rise"]
        assert table.split_names == ["1"]
        assert sorted(np.unique(table.splits[:, 0])) == [1, 2]
        assert set(table.columns["src_fps"]) == set(table.columns["fps"]) == {25.0}
        assert (np.minimum(table.columns["width"], table.columns["height"]) == 48).all()
        row = table.row(5)
        direct = list(decode_frames(synthetic_root / row["relpath"], 48, None))
        assert row["frame_count"] == row["num_images"] == len(direct)
        assert min(row["width"], row["height"]) == 48
        assert row["src_fps"] == 25.0 and row["checksum"]
        stored = read_encoded_images(h5, "images", row["first_image"], row["num_images"])
        first = decode_image(stored[0], "jpeg", row["height"], row["width"], 3)
        # JPEG q90 on a 48-px textured frame: a mean error near 13, far below that of an image
        # with the same colours but another layout (the frame mirrored).
        error = np.abs(first.astype(int) - direct[0].astype(int)).mean()
        mirrored = np.abs(first.astype(int) - direct[0][:, ::-1].astype(int)).mean()
        assert error < 20 and error < mirrored / 2
        assert table.columns["first_image"][-1] + table.columns["num_images"][-1] == len(
            h5["images/offsets"]) - 1


@pytest.mark.slow
def test_second_run_is_cached_and_force_redoes(synthetic_root, tmp_path):
    extract(synthetic_root, tmp_path)
    again = extract(synthetic_root, tmp_path)
    assert again.status == "up to date" and again.counts.processed == 0
    forced = extract(synthetic_root, tmp_path, context=RunContext(force=True))
    assert forced.status == "written" and forced.counts.processed == 24
    changed = extract(synthetic_root, tmp_path, settings=ExtractFramesConfig(short_side=40))
    assert changed.status == "written" and changed.counts.processed == 24


@pytest.mark.slow
def test_bad_videos_are_recorded_and_the_run_goes_on(synthetic_root, tmp_path):
    root = tmp_path / "data"
    expected = copy_with_bad_videos(synthetic_root, root)
    result = extract(root, tmp_path / "ws")
    assert result.status == "written"
    reasons = {f.relpath: f.reason for f in result.failures}
    for relpath, word in expected.items():
        assert word in reasons[relpath]
    with open_artifact(result.output) as h5:
        stored_failures, _ = read_failures(h5)
        table = read_video_table(h5)
    assert {f.relpath for f in stored_failures} == set(reasons)
    assert len(table) + len(reasons) == 28
    assert not set(reasons) & set(table.columns["relpath"])


@pytest.mark.slow
def test_shards_merge_into_the_same_artifact(synthetic_root, training_workspace, tmp_path):
    whole = unsharded(training_workspace)
    first = extract(synthetic_root, tmp_path / "sharded", shard=Shard(0, 2))
    assert first.status == "shard done" and not first.output.exists()
    second = extract(synthetic_root, tmp_path / "sharded", shard=Shard(1, 2))
    assert second.status == "written" and second.counts.processed == 12
    assert_same_contents(whole, second.output)
    assert not any(p.name.endswith(".parts") for p in second.output.parent.iterdir())


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_videos(synthetic_root, training_workspace,
                                                        tmp_path):
    extract(synthetic_root, tmp_path, shard=Shard(1, 3))  # stands for a run killed part-way
    resumed = extract(synthetic_root, tmp_path)
    assert (resumed.counts.reused, resumed.counts.processed) == (8, 16)
    assert_same_contents(resumed.output, unsharded(training_workspace))


def test_shard_parsing(monkeypatch):
    assert Shard.parse("1/4") == Shard(1, 4)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert Shard.parse(None) == Shard(2, 3)
    for bad in ("4/4", "a/b", "3"):
        with pytest.raises(SlicError):
            Shard.parse(bad)


def test_unwritable_output_is_a_clear_error(tmp_path):
    root = tmp_path / "data"
    (root / "Walk").mkdir(parents=True)
    (root / "Walk" / "never-decoded.avi").write_bytes(b"")  # the error comes first
    blocker = tmp_path / "file"
    blocker.write_text("")
    data = DataConfig(dataset="folder", root=str(root))
    with pytest.raises(SlicError, match="cannot write to"):
        run(SETTINGS, data, WorkspaceConfig(root=str(blocker)))


def test_a_video_starting_after_zero_is_stored_frame_by_frame(tmp_path):
    root = tmp_path / "data"
    (root / "Walk").mkdir(parents=True)
    written = ramp_frames(10, 48, 64)  # every frame differs from the one before
    write_video_starting_late(root / "Walk" / "late.avi", written, fps=25)
    data = DataConfig(dataset="folder", root=str(root))
    result = run(ExtractFramesConfig(short_side=48, workers=1), data,
                 WorkspaceConfig(root=str(tmp_path / "ws")))
    with open_artifact(result.output, "frames") as h5:
        row = read_video_table(h5).row(0)
        stored = read_encoded_images(h5, "images", row["first_image"], row["num_images"])
    assert row["frame_count"] == row["num_images"] == 10
    assert row["fps"] == row["src_fps"] == 25.0
    frames = np.stack([decode_image(image, "jpeg", 48, 64, 3) for image in stored]).astype(int)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert steps.min() > 2  # no frame is a copy of the one before
