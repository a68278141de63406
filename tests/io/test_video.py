import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.io.video import (
    StreamInfo,
    VideoDecodeError,
    decode_frames,
    encode_jpeg_frames,
    ffmpeg_executable,
    split_jpeg_stream,
    write_video,
)


def ramp_frames(num: int, height: int, width: int) -> np.ndarray:
    frames = np.zeros((num, height, width, 3), np.uint8)
    for t in range(num):
        frames[t, :, :, 0] = (np.arange(width) * 4 + t * 10) % 256
        frames[t, :, :, 1] = 128
    return frames


def write_video_starting_late(path: Path, frames: np.ndarray, fps: float) -> None:
    """Encode frames into an AVI whose first timestamp is one frame in, as in some XviD files.

    ffmpeg's default constant-rate decoding of such a file writes its first frame twice.
    """
    num, height, width, _ = frames.shape
    command = [ffmpeg_executable(), "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:", "-c:v", "mpeg4",
               "-pix_fmt", "yuv420p", "-q:v", "3", "-output_ts_offset", str(1 / fps),
               "file:" + str(path)]
    subprocess.run(command, input=frames.tobytes(), capture_output=True, check=True)


def constant_rate_frame_count(path: Path, frame_bytes: int) -> int:
    """How many frames ffmpeg's default (constant-rate) raw RGB output of a video holds."""
    command = [ffmpeg_executable(), "-nostdin", "-i", "file:" + str(path), "-f", "rawvideo",
               "-pix_fmt", "rgb24", "pipe:"]
    return len(subprocess.run(command, capture_output=True, check=True).stdout) // frame_bytes


def test_a_video_starting_after_zero_keeps_each_frame_once(tmp_path):
    path = tmp_path / "late.avi"
    written = ramp_frames(10, 48, 64)  # every frame differs from the one before
    write_video_starting_late(path, written, fps=25)
    assert constant_rate_frame_count(path, written[0].nbytes) == 11  # it shows the duplicate
    decoded = np.stack(list(decode_frames(path, None, None))).astype(int)
    assert len(decoded) == 10
    errors = np.abs(decoded[:, None] - written[None].astype(int)).mean(axis=(2, 3, 4))
    assert (errors.argmin(axis=1) == np.arange(10)).all()  # each frame once, in order
    jpegs = list(encode_jpeg_frames(path, None, None, 4))
    assert len(jpegs) == 10
    assert len(list(decode_frames(path, None, 10.0))) == 4  # still resampled: 0.4 s at 10 fps


@pytest.mark.parametrize("name", ["plain.avi", "with space.avi", "quote's \"q\".avi",
                                  "colon:name.avi", "-dash.mp4"])
def test_round_trip_with_awkward_names(tmp_path, name):
    path = tmp_path / name
    write_video(path, ramp_frames(12, 48, 64), fps=25)
    info = StreamInfo()
    frames = list(decode_frames(path, None, None, info))
    assert len(frames) == 12
    assert frames[0].shape == (48, 64, 3)
    assert (info.src_width, info.src_height, info.src_fps) == (64, 48, 25.0)


def test_short_side_resize_keeps_aspect_and_fps_resamples(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, ramp_frames(50, 60, 100), fps=25)
    info = StreamInfo()
    frames = list(decode_frames(path, 30, 10.0, info))
    assert frames[0].shape == (30, 50, 3)
    assert (info.width, info.height) == (50, 30)
    assert len(frames) == 20  # 2 s at 10 fps
    tall = tmp_path / "tall.avi"
    write_video(tall, ramp_frames(3, 100, 60), fps=25)
    assert next(decode_frames(tall, 30, None)).shape == (50, 30, 3)


def test_decoded_pixels_match_written_pixels(tmp_path):
    path = tmp_path / "v.avi"
    frames = ramp_frames(5, 64, 64)
    write_video(path, frames, fps=25)
    decoded = np.stack(list(decode_frames(path, None, None)))
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 6


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50])
def test_corrupt_or_empty_file_raises_with_reason(tmp_path, content):
    path = tmp_path / "bad.avi"
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match="ffmpeg: "):
        list(decode_frames(path, 32, None))


def test_ffmpeg_jpegs_split_from_a_stream_read_in_pieces(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, ramp_frames(9, 48, 64), fps=25)
    info = StreamInfo()
    jpegs = list(encode_jpeg_frames(path, 32, None, 4, info, chunk=97))
    assert len(jpegs) == 9 and (info.width, info.height) == (42, 32)
    assert all(j[:2] == b"\xff\xd8" and j[-2:] == b"\xff\xd9" for j in jpegs)
    stream = b"".join(jpegs)
    for cut in (1, 5, len(jpegs[0]) + 3, len(stream) - 1):
        head, consumed = split_jpeg_stream(stream[:cut])
        rest, _ = split_jpeg_stream(stream[consumed:])
        assert head + rest == jpegs
    decoded = cv2.imdecode(np.frombuffer(jpegs[4], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (32, 42, 3)
    with pytest.raises(VideoDecodeError):
        split_jpeg_stream(b"nonsense")


def ffmpeg_children() -> list[int]:
    """Pids of this process's children whose command name mentions ffmpeg (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        if int(rest.split()[1]) == os.getpid() and "ffmpeg" in name:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")
def test_stopping_early_is_not_an_error_and_ends_ffmpeg(tmp_path):
    path = tmp_path / "v.avi"
    source = ramp_frames(30, 48, 64)
    write_video(path, source, fps=25)
    frames = decode_frames(path, None, None)
    first = next(frames)
    assert first.shape == (48, 64, 3)
    assert np.abs(first.astype(int) - source[0]).mean() < 8  # the first frame, lossy codec
    assert ffmpeg_children()  # the decoder is running while frames are pending
    frames.close()  # the consumer stops after one frame: no exception, no process left
    assert ffmpeg_children() == []


@pytest.mark.parametrize("decode", ["raw", "jpeg"])
def test_a_decoder_that_stalls_is_stopped_at_the_timeout_and_says_so(tmp_path, decode):
    stalled = tmp_path / "stalled.mp4"
    os.mkfifo(stalled)  # ffmpeg waits for a writer that never comes
    frames = (decode_frames(stalled, None, None, timeout=1) if decode == "raw" else
              encode_jpeg_frames(stalled, None, None, 4, timeout=1))
    with pytest.raises(VideoDecodeError, match=r"took longer than 1 s \(extract_frames"):
        list(frames)


def test_a_timeout_longer_than_the_decoding_changes_nothing(tmp_path):
    frames = ramp_frames(6, 32, 48)
    write_video(tmp_path / "v.mp4", frames, fps=25)
    assert len(list(decode_frames(tmp_path / "v.mp4", None, None, timeout=60))) == 6
