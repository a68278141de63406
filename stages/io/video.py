"""Decode and encode video files with ffmpeg (through ffmpeg-python).

The ffmpeg binary is, in order: `$SLIC_FFMPEG`, an `ffmpeg` on PATH, or the one shipped in the
imageio-ffmpeg wheel, so a pip install is all the set-up there is.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from stages.runtime.errors import RetryableFailure, SlicError

_DIMS = re.compile(r", (\d+)x(\d+)")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")  # "[in#0/avi @ 0x5585...] " before a message
# Words of ffmpeg's log lines that report damaged or missing data while decoding.
_PROBLEM_WORDS = ("error", "corrupt", "invalid", "partial file", "damaged", "prematurely",
                  "truncat", "incomplete")
# Lines of ffmpeg's log that describe the streams, never a problem (a file name may hold
# "error").
_DESCRIPTION_LINES = ("Input #", "Output #", "Stream mapping", "frame=", "Press [q]")
# A video decoding to fewer frames than its container declares, by more than this many frames
# or this fraction of them, is noted as truncated (frame counts from durations are approximate).
SHORTFALL_FRAMES = 2
SHORTFALL_FRACTION = 0.05


@lru_cache(maxsize=1)
def ffmpeg_executable() -> str:
    """Path of the ffmpeg binary to run."""
    override = os.environ.get("SLIC_FFMPEG")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise SlicError(f"SLIC_FFMPEG={override} is not an executable file; fix or unset it")
        return override
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class VideoDecodeError(Exception):
    """A video that ffmpeg cannot decode; the message is the reason recorded in artifacts."""


class DecoderInterrupted(RetryableFailure):
    """ffmpeg was stopped by a signal before the end of a video it was decoding."""


@dataclass
class StreamInfo:
    """Sizes and frame rate of a decoded stream: the source's and the output's; the duration
    the container declares (seconds, 0.0 unknown) and the problems ffmpeg reported while
    decoding (its log lines, in order, without their "[component @ address]" prefix)."""

    src_width: int = 0
    src_height: int = 0
    src_fps: float = 0.0
    width: int = 0
    height: int = 0
    duration: float = 0.0
    problems: list[str] = field(default_factory=list)


def _parse_duration(line: str) -> float:
    match = _DURATION.search(line)
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else 0.0


def _problem(line: str) -> str | None:
    """The message of a log line that reports damaged or missing data, else None."""
    if not line or line[0].isspace() or line.startswith(_DESCRIPTION_LINES):
        return None
    message = _LOG_PREFIX.sub("", line).strip()
    return message if any(w in message.lower() for w in _PROBLEM_WORDS) else None


def _parse_fps(line: str) -> float:
    match = _FPS.search(line)
    if not match:
        return 0.0
    return float(match[1]) * (1000.0 if match[2] else 1.0)


class _Deadline:
    """Stops an ffmpeg that decodes one video for longer than `seconds` (None: no limit), so
    a stalled or pathological file cannot hold a worker forever."""

    def __init__(self, process: subprocess.Popen, seconds: float | None) -> None:
        self.seconds, self.passed = seconds, False
        self.timer = threading.Timer(seconds, self._stop, (process,)) if seconds else None
        if self.timer is not None:
            self.timer.daemon = True
            self.timer.start()

    def _stop(self, process: subprocess.Popen) -> None:
        self.passed = True
        process.kill()

    def cancel(self) -> None:
        """Stop waiting (the video's decoding ended)."""
        if self.timer is not None:
            self.timer.cancel()


class _StderrWatcher(threading.Thread):
    """Reads ffmpeg's log while frames stream out, and finds the stream sizes in it."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.lines: list[str] = []
        self.info = StreamInfo()
        self.ready = threading.Event()

    def run(self) -> None:
        """Read ffmpeg's log to its end, noting the source's size and fps and the output's size;
        `ready` is set once the output size is known, or when the log ends."""
        in_output = False
        for raw in iter(self.pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            self.lines.append(line)
            if line.startswith("Output #0"):
                in_output = True
            elif not in_output and not self.info.duration and "Duration:" in line:
                self.info.duration = _parse_duration(line)
            elif (problem := _problem(line)) is not None:
                self.info.problems.append(problem)
            elif "Stream #" in line and "Video:" in line and (dims := _DIMS.search(line)):
                if in_output:
                    self.info.width, self.info.height = int(dims[1]), int(dims[2])
                    self.ready.set()
                elif not self.info.src_width:
                    self.info.src_width, self.info.src_height = int(dims[1]), int(dims[2])
                    self.info.src_fps = _parse_fps(line)
        self.ready.set()

    def reason(self) -> str:
        """The most telling line of the log, for a failure message."""
        errors = [
            line for line in self.lines
            if any(w in line.lower() for w in ("error", "invalid", "no such", "denied", "moov"))
        ]
        return (errors or self.lines or ["ffmpeg produced no output"])[-1].strip()


@lru_cache(maxsize=1)
def _passthrough_option() -> str:
    """The name of ffmpeg's option for how output frames are timed.

    `fps_mode` since ffmpeg 5.1; `vsync` before it (later releases dropped `vsync`).
    """
    process = subprocess.run([ffmpeg_executable(), "-hide_banner", "-h", "long"],
                             stdin=subprocess.DEVNULL, capture_output=True)
    return "fps_mode" if b"-fps_mode" in process.stdout else "vsync"


def _scale_filter(short_side: int) -> tuple[str, str]:
    """ffmpeg scale expressions that set the short side and keep the aspect (even sizes)."""
    width = f"if(gt(iw,ih),-2,{short_side})"
    height = f"if(gt(iw,ih),{short_side},-2)"
    return width, height


def _as_input(path: Path) -> str:
    # "file:" keeps names with ':' from being read as a protocol, and names starting with '-'
    # from being read as options.
    return "file:" + str(Path(path).resolve())


def _ffmpeg_command(stream: Any, *global_options: str) -> list[str]:
    """The ffmpeg command line of a stream, with global options first, where ffmpeg reads them.

    ffmpeg-python appends `global_args` after the output, where ffmpeg ignores them.
    """
    command = stream.compile(cmd=ffmpeg_executable())
    return [command[0], "-nostdin", "-hide_banner", *global_options, *command[1:]]


def _start_decoder(path: Path, short_side: int | None, fps: float | None,
                   output: dict[str, Any], timeout: float | None = None
                   ) -> tuple[subprocess.Popen, _StderrWatcher, _Deadline]:
    """Start ffmpeg decoding `path` (resized, resampled) to stdout in the `output` format.

    Without `fps`, every decoded frame comes out once, in order. One thread for
    decoding, filtering and encoding: slic runs one ffmpeg per worker process. After
    `timeout` seconds (None: never) ffmpeg is stopped and `_finish` says why.
    """
    stream = ffmpeg.input(_as_input(path), threads=1)
    if fps:
        stream = stream.filter("fps", fps=fps)
    else:
        # ffmpeg's default for raw and image outputs is a constant rate: it repeats or drops
        # frames to fill gaps in the timestamps, so a video whose first timestamp is not 0 got
        # its first frame twice. Passthrough hands each frame on once, whatever its timestamp.
        output = {**output, _passthrough_option(): "passthrough"}
    if short_side:
        width, height = _scale_filter(short_side)
        stream = stream.filter("scale", width, height)
    stream = stream.output("pipe:", threads=1, **output)
    process = subprocess.Popen(_ffmpeg_command(stream, "-filter_threads", "1"),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    watcher = _StderrWatcher(process.stderr)
    watcher.start()
    return process, watcher, _Deadline(process, timeout)


def _finish(process: subprocess.Popen, watcher: _StderrWatcher, completed: bool,
            deadline: _Deadline | None = None) -> None:
    """Reap ffmpeg; when the stream was read to its end, raise if ffmpeg failed.

    A consumer that stops early (completed False) stops ffmpeg, and that is not an error.
    """
    if not completed:
        process.kill()
    process.stdout.close()
    code = process.wait()
    watcher.join()
    if deadline is not None:
        deadline.cancel()
        if deadline.passed:
            raise VideoDecodeError(f"decoding took longer than {deadline.seconds:g} s "
                                   "(extract_frames.decode_timeout)")
    if completed and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        cause = " (the out-of-memory killer?)" if -code == signal.SIGKILL else ""
        raise DecoderInterrupted(f"ffmpeg was stopped by {name}{cause}")
    if completed and (code != 0 or not watcher.info.width):
        raise VideoDecodeError(f"ffmpeg: {watcher.reason()}")


def decode_frames(
    path: Path, short_side: int | None, fps: float | None, info: StreamInfo | None = None,
    timeout: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield the frames of a video as (H, W, 3) uint8 RGB arrays, one at a time.

    The short side is resized to `short_side` (None keeps the size), the rate resampled to `fps`
    (None keeps every decoded frame, each once). `info`, when given, is filled with the source
    and output sizes before the first frame, and with the problems ffmpeg reported once the
    video is read to its end. Raises VideoDecodeError when ffmpeg fails or takes longer than
    `timeout` seconds.
    """
    process, watcher, deadline = _start_decoder(
        path, short_side, fps, {"format": "rawvideo", "pix_fmt": "rgb24"}, timeout)
    completed = False
    try:
        watcher.ready.wait()
        if info is not None:
            info.__dict__.update(watcher.info.__dict__)
        frame_bytes = watcher.info.width * watcher.info.height * 3
        while frame_bytes:
            buffer = process.stdout.read(frame_bytes)
            if len(buffer) < frame_bytes:
                break
            yield np.frombuffer(buffer, np.uint8).reshape(
                watcher.info.height, watcher.info.width, 3
            )
        completed = True
    finally:
        _finish(process, watcher, completed, deadline)
    if info is not None:  # again: the problems are known once the log is read to its end
        info.__dict__.update(watcher.info.__dict__)


def _avi_header(path: Path) -> tuple[int, float] | None:
    """(frames, seconds) an AVI file's main header declares, or None for another file. A cut
    AVI loses its index, and ffmpeg then estimates its duration from its size: the header's
    frame count still says how long it was."""
    with open(path, "rb") as handle:
        head = handle.read(56)
    if len(head) < 56 or head[:4] != b"RIFF" or head[8:12] != b"AVI " or head[24:28] != b"avih":
        return None
    micro_seconds = int.from_bytes(head[32:36], "little")
    frames = int.from_bytes(head[48:52], "little")
    return frames, frames * micro_seconds / 1e6


def declared_frames(path: Path, info: StreamInfo, fps: float | None) -> float:
    """How many frames the container of `path` declares at the output rate `fps` (None: the
    source's), from an AVI's header or else the duration times the rate; 0.0 when unknown."""
    avi = _avi_header(path)
    if avi is not None:
        frames, seconds = avi
        return seconds * fps if fps else float(frames)
    return info.duration * (fps or info.src_fps)


def decoding_note(path: Path, decoded: int, info: StreamInfo, fps: float | None) -> str:
    """What to record of a video kept with `decoded` frames, "" when nothing: that it decoded
    short of what its container declares (beyond SHORTFALL_FRAMES and SHORTFALL_FRACTION) and
    why ffmpeg stopped, or the first problem ffmpeg reported while decoding. `info` is the
    video's, filled by `decode_frames` or `encode_jpeg_frames`."""
    expected = declared_frames(path, info, fps)
    short = expected - decoded > max(SHORTFALL_FRAMES, SHORTFALL_FRACTION * expected)
    if not short and not info.problems:
        return ""
    counted = f"decoded {decoded} of ~{round(expected)} frames" if expected else (
        f"decoded {decoded} frames")
    more = len(info.problems) - 1
    reported = (f"{info.problems[0]!r}" + (f" and {more} more problems" if more else "")
                if info.problems else "")
    if not short:
        return f"{counted}; ffmpeg reported {reported}"
    if reported:
        return f"{counted}: ffmpeg stopped with {reported}"
    return f"{counted}: the file ends early (ffmpeg reported no error)"


def split_jpeg_stream(buffer: bytes | bytearray) -> tuple[list[bytes], int]:
    """Cut the complete JPEG images off the front of a concatenated JPEG stream.

    Returns the images and the number of bytes they span; an incomplete image at the end is
    left for the next call. Header segments are skipped by their lengths; in the entropy-coded
    data every 0xFF byte is stuffed, so the first FF D9 after the scan header is the image's end.
    """
    images: list[bytes] = []
    position = 0
    size = len(buffer)
    while position + 4 <= size:
        if buffer[position] != 0xFF or buffer[position + 1] != 0xD8:
            raise VideoDecodeError("ffmpeg wrote a JPEG stream that does not start with SOI")
        cursor, end = position + 2, -1
        while cursor + 4 <= size:
            code = buffer[cursor + 1]
            if code == 0xFF:  # fill byte before a marker
                cursor += 1
            elif 0xD0 <= code <= 0xD7 or code == 0x01:
                cursor += 2
            elif code == 0xDA:
                scan = cursor + 2 + int.from_bytes(buffer[cursor + 2:cursor + 4], "big")
                found = buffer.find(b"\xff\xd9", scan)
                end = found + 2 if found >= 0 else -1
                break
            else:
                cursor += 2 + int.from_bytes(buffer[cursor + 2:cursor + 4], "big")
        if end < 0:
            break
        images.append(bytes(buffer[position:end]))
        position = end
    return images, position


def encode_jpeg_frames(
    path: Path, short_side: int | None, fps: float | None, qscale: int | None,
    info: StreamInfo | None = None, chunk: int = 1 << 16, timeout: float | None = None,
) -> Iterator[bytes]:
    """Yield every frame of a video as a JPEG file's bytes, encoded by ffmpeg itself.

    Decoding, resizing and JPEG encoding all happen inside one ffmpeg process, with no RGB
    round trip through Python. `qscale` is ffmpeg's `-q:v` (2 best ... 31 worst); None keeps
    ffmpeg's default rate control, as the official SLIC data scripts do. `info` is filled
    once the video is read to its end.
    """
    output: dict[str, Any] = {"format": "image2pipe", "vcodec": "mjpeg"}
    if qscale is not None:
        output["q:v"] = qscale
    process, watcher, deadline = _start_decoder(path, short_side, fps, output, timeout)
    completed = False
    try:
        pending = bytearray()
        while block := process.stdout.read(chunk):
            pending += block
            images, consumed = split_jpeg_stream(pending)
            del pending[:consumed]
            yield from images
        completed = True
    finally:
        _finish(process, watcher, completed, deadline)
    if info is not None:  # only now: the log is read to its end once _finish returns
        info.__dict__.update(watcher.info.__dict__)


def write_video(path: Path, frames: np.ndarray, fps: float, codec: str = "mpeg4") -> None:
    """Encode (T, H, W, 3) uint8 RGB frames (H and W even) into a video file at `path`."""
    num, height, width, _ = frames.shape
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                          r=fps)
    options = {"vcodec": codec, "pix_fmt": "yuv420p", "q:v": 3, "threads": 1,
               "fflags": "+bitexact", "flags": "+bitexact"}
    stream = stream.output("file:" + str(path), **options)
    process = subprocess.run(_ffmpeg_command(stream, "-y"),
                             input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    if process.returncode != 0:
        tail = process.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
        raise SlicError(f"ffmpeg could not write {path}: {' '.join(tail)}")
