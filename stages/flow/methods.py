"""Dense optical flow methods (a registry) and the uint8 storage convention for flow fields."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import cv2
import numpy as np

from stages.runtime.errors import SlicError

# A flow method maps two (H, W) uint8 gray frames to an (H, W, 2) float32 field (u, v) in pixels.
FlowFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
# A video flow method maps (T, H, W) uint8 gray frames to the (T - 1, H, W, 2) float32 fields
# between consecutive frames.
VideoFlowFunction = Callable[[np.ndarray], np.ndarray]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
TVL1_OPENCV_INSTALL_HINT = (
    "--method tvl1-opencv needs OpenCV's contrib module: pip uninstall -y opencv-python && "
    "pip install opencv-contrib-python (or use --method tvl1, the same algorithm in PyTorch, "
    "about 2x faster)"
)


def make_dis(preset: str) -> FlowFunction:
    """DIS flow at `preset` (ultrafast, fast, medium); one OpenCV instance serves every pair."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return lambda previous, current: dis.calc(previous, current, None)


def make_farneback(preset: str) -> FlowFunction:
    """Farneback flow with fixed parameters (3 levels at scale 0.5, window 15); `preset` is ignored,
    as it is a DIS setting."""
    def farneback(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(previous, current, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    return farneback


def make_tvl1(preset: str) -> FlowFunction:
    """TV-L1 in PyTorch (stages/flow/tvl1.py, OpenCV's defaults) on CPU, pair by pair."""
    video = make_tvl1_video(preset)
    return lambda previous, current: video(np.stack([previous, current]))[0]


def make_tvl1_video(preset: str, device: str = "cpu") -> VideoFlowFunction:
    """TV-L1 in PyTorch on `device` (a torch device name), a video's pairs batched. In a
    worker process torch gets one thread: the workers are the parallelism (as for OpenCV's
    methods), and two threads a worker on shared cores mostly wait on each other."""
    import torch  # here, not above: the command line starts without torch

    from stages.flow.tvl1 import tvl1_video

    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)

    def flows(frames: np.ndarray) -> np.ndarray:
        fields = tvl1_video(torch.from_numpy(frames).to(device))
        return fields.permute(0, 2, 3, 1).cpu().numpy()

    return flows


def make_tvl1_opencv(preset: str) -> FlowFunction:
    """OpenCV contrib's Dual TV-L1 at its defaults; `preset` is ignored. Raises SlicError with the
    install hint when opencv-contrib is missing."""
    if not hasattr(cv2, "optflow"):
        raise SlicError(TVL1_OPENCV_INSTALL_HINT)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    return lambda previous, current: tvl1.calc(previous, current, None)


FLOW_METHODS: dict[str, Callable[[str], FlowFunction]] = {
    "dis": make_dis,
    "farneback": make_farneback,
    "tvl1": make_tvl1,
    "tvl1-opencv": make_tvl1_opencv,
}
# The methods that batch a video's pairs (faster than pair by pair), on any torch device.
VIDEO_FLOW_METHODS: dict[str, Callable[[str, str], VideoFlowFunction]] = {
    "tvl1": make_tvl1_video,
}


def make_video_flow(method: str, preset: str, device: str = "cpu") -> VideoFlowFunction:
    """The flows of a video's consecutive pairs by `method` on `device`: batched where the
    method batches, else pair by pair (on the CPU: OpenCV's methods run nowhere else)."""
    if method in VIDEO_FLOW_METHODS:
        return VIDEO_FLOW_METHODS[method](preset, device)
    flow = FLOW_METHODS[method](preset)

    def flows(frames: np.ndarray) -> np.ndarray:
        fields = [flow(previous, current) for previous, current in zip(frames[:-1], frames[1:])]
        return np.stack(fields) if fields else np.zeros((0, *frames.shape[1:], 2), np.float32)

    return flows


def check_flow_method(method: str) -> None:
    """Fail early, with the fix, if `method` cannot run here."""
    if method == "tvl1-opencv" and not hasattr(cv2, "optflow"):
        raise SlicError(TVL1_OPENCV_INSTALL_HINT)


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
