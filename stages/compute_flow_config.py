"""The `compute_flow` config section: the flow method and how flow is stored."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import (
    DIS_PRESET_NAMES,
    FLOW_METHOD_NAMES,
    FLOW_RESOLUTIONS,
    IMAGE_CODECS,
)
from stages.runtime.settings import setting


@dataclass
class ComputeFlowConfig:
    """compute_flow: optical flow between consecutive frames, stored as uint8 u and v images"""

    method: str = setting("dis", "flow algorithm (tvl1: PyTorch; tvl1-opencv needs "
                          "opencv-contrib-python)", choices=FLOW_METHOD_NAMES)
    dis_preset: str = setting("medium", "speed/quality preset of DIS", choices=DIS_PRESET_NAMES)
    bound: float = setting(20.0, "flow is clipped to +-bound pixels, then scaled to 0..255",
                           minimum=0.5, maximum=1000.0)
    reference_short_side: int | None = setting(
        240, "measure motion in pixels of frames with this short side, whatever size the "
        "frames are stored at (the official frames: 240 for UCF101 and HMDB51, 320 for "
        "Kinetics-400), so the stored u and v have the official contrast; null: pixels of "
        "the stored frames", minimum=16, maximum=4096)
    resolution: str = setting(
        "reference", "where the flow is computed: reference (on the frames resized to "
        "reference_short_side, the flow resized back: the official contrast, about 4x the "
        "time for 128-px frames) or stored (on the stored frames, the bound scaled: fast, "
        "but small motions measure less; see the README)", choices=FLOW_RESOLUTIONS)
    codec: str = setting("jpeg", "how u and v images are stored", choices=IMAGE_CODECS)
    jpeg_quality: int = setting(95, "JPEG quality (codec jpeg)", minimum=1, maximum=100)
    workers: int | str = setting("auto", "parallel flow processes (OpenCV's methods and tvl1 on "
                                 "the CPU), or auto: one for every core this process may use",
                                 minimum=1, maximum=512, affects_output=False, auto=True)
