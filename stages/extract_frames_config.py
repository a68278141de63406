"""The `extract_frames` config section: decoding, resizing and storing frames."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import FRAME_CODECS
from stages.runtime.settings import setting


@dataclass
class ExtractFramesConfig:
    """extract_frames: decode videos, resize, and store every frame in one frames.h5"""

    short_side: int = setting(128, "resize so the short side has this many pixels (aspect kept)",
                              minimum=16, maximum=4096)
    fps: float | None = setting(None, "resample to this frame rate; null keeps each video's own",
                                minimum=0.1)
    codec: str = setting("jpeg", "how frames are stored (see README: why JPEG)",
                         choices=FRAME_CODECS)
    jpeg_qscale: int | None = setting(
        4, "JPEG quality as ffmpeg's -q:v, 2 best ... 31 worst; null = ffmpeg's default rate "
        "control, as the official SLIC scripts", minimum=2, maximum=31,
    )
    min_frames: int = setting(2, "videos decoding to fewer frames are recorded as failures",
                              minimum=1)
    decode_timeout: int = setting(900, "seconds one video may take to decode; a stalled or "
                                  "pathological file is then recorded as a failure "
                                  "(--force tries it again)", minimum=1,
                                  affects_output=False)
    workers: int | str = setting("auto", "parallel decoding processes, or auto: one for every "
                                 "core this process may use", minimum=1, maximum=512,
                                 affects_output=False, auto=True)
