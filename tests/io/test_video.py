import cv2
import numpy as np
import pytest

from stages.io.video import (
    StreamInfo,
    VideoDecodeError,
    decode_frames,
    encode_jpeg_frames,
    split_jpeg_stream,
    write_video,
)


def ramp_frames(num: int, height: int, width: int) -> np.ndarray:
    frames = np.zeros((num, height, width, 3), np.uint8)
    for t in range(num):
        frames[t, :, :, 0] = (np.arange(width) * 4 + t * 10) % 256
        frames[t, :, :, 1] = 128
    return frames


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


def test_stopping_early_is_not_an_error(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, ramp_frames(30, 48, 64), fps=25)
    frames = decode_frames(path, None, None)
    next(frames)
    frames.close()
