"""Dense optical flow methods (a registry) and the uint8 storage convention for flow fields."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from stages.errors import SlicError

# A flow method maps two (H, W) uint8 gray frames to an (H, W, 2) float32 field (u, v) in pixels.
FlowFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
TVL1_INSTALL_HINT = (
    "--method tvl1 needs OpenCV's contrib module: pip uninstall -y opencv-python && "
    "pip install opencv-contrib-python (or use --method dis, about 100x faster)"
)


def make_dis(preset: str) -> FlowFunction:
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return lambda previous, current: dis.calc(previous, current, None)


def make_farneback(preset: str) -> FlowFunction:
    def farneback(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(previous, current, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    return farneback


def make_tvl1(preset: str) -> FlowFunction:
    if not hasattr(cv2, "optflow"):
        raise SlicError(TVL1_INSTALL_HINT)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    return lambda previous, current: tvl1.calc(previous, current, None)


FLOW_METHODS: dict[str, Callable[[str], FlowFunction]] = {
    "dis": make_dis,
    "farneback": make_farneback,
    "tvl1": make_tvl1,
}


def check_flow_method(method: str) -> None:
    """Fail early, with the fix, if `method` cannot run here."""
    if method == "tvl1" and not hasattr(cv2, "optflow"):
        raise SlicError(TVL1_INSTALL_HINT)


def quantise_flow(flow: np.ndarray, bound: float) -> np.ndarray:
    """Clip an (H, W, 2) float field to +-bound and map it linearly to 0..255 uint8.

    0 maps to 127.5 (stored as 128 after rounding); this is the convention of the public TV-L1
    flow of UCF101 (bound 20). `dequantise_flow` inverts it up to the rounding step.
    """
    # One OpenCV pass: scale, shift, round and saturate (the saturation is the clipping).
    scale = 255.0 / (2.0 * bound)
    return cv2.addWeighted(flow, scale, flow, 0.0, 127.5, dtype=cv2.CV_8U)


def dequantise_flow(stored: np.ndarray, bound: float) -> np.ndarray:
    """Inverse of `quantise_flow`: uint8 back to float32 pixels per frame."""
    return stored.astype(np.float32) * (2.0 * bound / 255.0) - bound
