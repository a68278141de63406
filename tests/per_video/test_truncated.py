"""A video whose file is cut short is kept with a note saying how many frames it decoded of
how many its container declares, and why ffmpeg stopped."""

import re

import numpy as np
import pytest

from stages.extract_frames import ExtractFramesConfig, run
from stages.io.artifacts import open_artifact, read_encoded_images, read_failures, read_video_table
from stages.io.images import decode_image
from stages.io.video import StreamInfo, decoding_note, write_video
from stages.runtime.sections import DataConfig, WorkspaceConfig
from tests.io.test_video import ramp_frames

NOTE = re.compile(r"decoded (\d+) of ~(\d+) frames: ffmpeg stopped with '(.+)'")


def cut_video(path, frames: int, keep: float) -> None:
    """An AVI of `frames` frames of noise (the frames, not the headers, fill the file) at
    25 fps, of which only the first `keep` of the bytes stay."""
    noise = np.random.default_rng(0).integers(0, 256, (frames, 48, 64, 3), dtype=np.uint8)
    write_video(path, noise, fps=25)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("codec", ["jpeg", "raw"])
def test_a_truncated_video_is_kept_with_a_note(tmp_path, codec):
    root = tmp_path / "data"
    (root / "Walk").mkdir(parents=True)
    write_video(root / "Walk" / "whole.avi", ramp_frames(30, 48, 64), fps=25)
    cut_video(root / "Walk" / "cut.avi", 60, 0.4)
    data = DataConfig(dataset="folder", root=str(root))
    result = run(ExtractFramesConfig(short_side=48, workers=1, codec=codec), data,
                 WorkspaceConfig(root=str(tmp_path / "ws")))
    summary = result.summary()
    assert summary["num_failed"] == 0 and summary["num_truncated"] == 1
    [truncated] = summary["truncated"]
    assert truncated["relpath"] == "Walk/cut.avi"
    with open_artifact(result.output, "frames") as h5:
        table = read_video_table(h5)
        assert read_failures(h5) == ([], [])
        rows = {row["relpath"]: row for row in map(table.row, range(len(table)))}
        cut = rows["Walk/cut.avi"]
        stored = read_encoded_images(h5, "images", cut["first_image"], cut["num_images"])
    assert rows["Walk/whole.avi"]["note"] == ""
    match = NOTE.fullmatch(cut["note"].split("' and ")[0] + "'")
    assert match, cut["note"]
    decoded, declared, reason = int(match[1]), int(match[2]), match[3]
    assert decoded == cut["num_images"] == cut["frame_count"] and 5 < decoded < 50
    assert declared == 60 and "corrupt" in reason.lower()
    assert truncated["note"] == cut["note"]
    frames = [decode_image(image, codec, 48, 64, 3) for image in stored]  # still usable
    assert len(frames) == decoded and all(f.shape == (48, 64, 3) for f in frames)


def test_the_note_says_nothing_of_a_whole_video_and_counts_a_shortfall(tmp_path):
    path = tmp_path / "v.mkv"
    path.write_bytes(b"")  # not an AVI: the container's duration is used
    info = StreamInfo(src_fps=25.0, duration=4.8)
    assert decoding_note(path, 120, info, None) == ""
    assert decoding_note(path, 118, info, None) == ""  # within the tolerance
    assert decoding_note(path, 40, info, None) == (
        "decoded 40 of ~120 frames: the file ends early (ffmpeg reported no error)")
    assert decoding_note(path, 16, info, 10.0).startswith("decoded 16 of ~48 frames")
    info.problems = ["File ended prematurely"]
    assert decoding_note(path, 40, info, None) == (
        "decoded 40 of ~120 frames: ffmpeg stopped with 'File ended prematurely'")
    assert decoding_note(path, 120, info, None) == (
        "decoded 120 of ~120 frames; ffmpeg reported 'File ended prematurely'")
    assert decoding_note(path, 7, StreamInfo(problems=["a", "b"]), None) == (
        "decoded 7 frames; ffmpeg reported 'a' and 1 more problems")


def test_a_cut_avi_declares_its_frames_in_its_header(tmp_path):
    cut_video(tmp_path / "cut.avi", 50, 0.3)
    info = StreamInfo(src_fps=25.0, duration=0.5)  # what ffmpeg guesses from the cut size
    note = decoding_note(tmp_path / "cut.avi", 12, info, None)
    assert note.startswith("decoded 12 of ~50 frames")
    assert decoding_note(tmp_path / "cut.avi", 3, info, 5.0).startswith(
        "decoded 3 of ~10 frames")  # 2 s at 5 fps
