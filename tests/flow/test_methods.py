"""The flow-method registry and the uint8 storage convention: each method's direction and
settings on a known motion, the video wrapper, the early check for OpenCV contrib, and
quantisation values worked out by hand."""

from __future__ import annotations

import multiprocessing

import cv2
import numpy as np
import pytest
import torch

from stages.flow import methods
from stages.flow.methods import (
    FLOW_METHODS,
    check_flow_method,
    dequantise_flow,
    make_video_flow,
    quantise_flow,
)
from stages.runtime.errors import SlicError


def moving_frames(count: int = 3, height: int = 24, width: int = 28) -> np.ndarray:
    """(count, H, W) uint8: a smooth texture moving one pixel right a frame."""
    texture = cv2.GaussianBlur(np.random.default_rng(0).uniform(0, 255, (height, width + 8)),
                               (0, 0), 2)
    return np.stack([texture[:, 4 - step:4 - step + width] for step in range(count)]).astype(
        np.uint8)


def test_quantisation_by_hand_at_another_bound():
    """Bound 10: 255 / 20 = 12.75 levels a pixel around 127.5, rounded, clipped at +-10."""
    flow = np.array([[[-11.0, -10.0], [-4.0, 0.0], [2.0, 10.0], [3.9, 50.0]]], np.float32)
    stored = quantise_flow(flow, 10.0)
    # -4 -> 127.5 - 51 = 76.5 (76, half to even); 2 -> 153; 3.9 -> 177.225 -> 177.
    assert stored.dtype == np.uint8
    assert stored.tolist() == [[[0, 0], [76, 128], [153, 255], [177, 255]]]
    back = dequantise_flow(np.array([0, 128, 153, 255], np.uint8), 10.0)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, [-10.0, 10 / 255, 2.0, 10.0], atol=1e-5)


def test_dis_flows_follow_the_motion_at_the_chosen_preset():
    """DIS from each frame to the next: +1 px in u; `ultrafast` is OpenCV's ultrafast preset
    (not the medium one), one instance serving every pair."""
    frames = moving_frames()
    flow = FLOW_METHODS["dis"]("ultrafast")
    expected = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    first = flow(frames[0], frames[1])
    np.testing.assert_array_equal(first, expected.calc(frames[0], frames[1], None))
    assert abs(np.median(first[..., 0]) - 1) < 0.2 and abs(np.median(first[..., 1])) < 0.2
    medium = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    assert not np.array_equal(first, medium.calc(frames[0], frames[1], None))
    np.testing.assert_array_equal(flow(frames[1], frames[2]),
                                  expected.calc(frames[1], frames[2], None))


def test_farneback_uses_its_documented_settings_whatever_the_preset():
    """3 levels at scale 0.5, window 15 (and OpenCV's usual 3 iterations, poly_n 5, sigma
    1.2); +1 px in u from a frame to the next. OpenCV stops its pyramid at 32 px: the
    frames are large enough for a pyramid (its fourth level would need 512 px)."""
    frames = moving_frames(2, 136, 136)
    flow = FLOW_METHODS["farneback"]("ultrafast")(frames[0], frames[1])
    expected = cv2.calcOpticalFlowFarneback(frames[0], frames[1], None, pyr_scale=0.5, levels=3,
                                            winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                                            flags=0)
    np.testing.assert_array_equal(flow, expected)
    assert abs(np.median(flow[..., 0]) - 1) < 0.2


def test_tvl1_methods_hand_the_frames_to_the_torch_scheme(monkeypatch: pytest.MonkeyPatch):
    """The torch methods stack (previous, current) as a (T, H, W) video for `tvl1_video` and
    return its (T - 1, 2, H, W) fields channels last; a stand-in scheme (u = current -
    previous, v = previous) shows the order of frames and of channels."""
    seen: list[torch.Tensor] = []

    def stand_in(frames: torch.Tensor) -> torch.Tensor:
        seen.append(frames)
        moving = frames.float()
        return torch.stack([moving[1:] - moving[:-1], moving[:-1]], 1)

    monkeypatch.setattr("stages.flow.tvl1.tvl1_video", stand_in)
    frames = moving_frames(3, 5, 6)
    pair = FLOW_METHODS["tvl1"]("medium")(frames[0], frames[1])
    assert seen[-1].shape == (2, 5, 6) and seen[-1].dtype == torch.uint8
    assert pair.shape == (5, 6, 2) and isinstance(pair, np.ndarray)
    np.testing.assert_array_equal(pair[..., 0], frames[1].astype(np.float32) - frames[0])
    np.testing.assert_array_equal(pair[..., 1], frames[0])
    fields = make_video_flow("tvl1", "medium", "cpu")(frames)
    assert fields.shape == (2, 5, 6, 2) and seen[-1].device.type == "cpu"
    np.testing.assert_array_equal(fields[1, ..., 0], frames[2].astype(np.float32) - frames[1])


def test_torch_method_runs_on_the_device_asked_for(monkeypatch: pytest.MonkeyPatch):
    """The frames go to the named torch device (here "meta", which holds shapes only)."""
    devices: list[str] = []

    def stand_in(frames: torch.Tensor) -> torch.Tensor:
        devices.append(frames.device.type)
        return torch.zeros(len(frames) - 1, 2, *frames.shape[1:])

    monkeypatch.setattr("stages.flow.tvl1.tvl1_video", stand_in)
    fields = make_video_flow("tvl1", "medium", "meta")(moving_frames(3, 5, 6))
    assert devices == ["meta"] and fields.shape == (2, 5, 6, 2)


def test_video_flow_of_an_opencv_method_goes_pair_by_pair():
    frames = moving_frames(4, 16, 20)
    fields = make_video_flow("dis", "fast")(frames)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    assert fields.shape == (3, 16, 20, 2)
    for index in range(3):
        np.testing.assert_array_equal(fields[index], dis.calc(frames[index], frames[index + 1],
                                                              None))
    empty = make_video_flow("dis", "fast")(frames[:1])
    assert empty.shape == (0, 16, 20, 2) and empty.dtype == np.float32


def threads_in_a_worker(queue: multiprocessing.Queue) -> None:
    """Make the torch method in a child process and report torch's thread count."""
    torch.set_num_threads(2)
    methods.make_tvl1_video("medium")
    queue.put(torch.get_num_threads())


def test_torch_method_takes_one_thread_in_workers_only():
    """Workers are the parallelism: a worker's torch gets one thread, the main process keeps
    its own."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        methods.make_tvl1_video("medium")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=threads_in_a_worker, args=(queue,))
    worker.start()
    assert queue.get(timeout=30) == 1
    worker.join(timeout=30)


def test_tvl1_opencv_without_contrib_says_how_to_get_it():
    """Here OpenCV has no contrib module: both the early check and the builder name the
    package to install and the torch alternative; other methods pass the check."""
    if hasattr(cv2, "optflow"):
        pytest.skip("OpenCV contrib is installed here")
    for fail in (lambda: check_flow_method("tvl1-opencv"),
                 lambda: FLOW_METHODS["tvl1-opencv"]("medium")):
        with pytest.raises(SlicError, match="pip install opencv-contrib-python") as refused:
            fail()
        assert "--method tvl1," in str(refused.value)
    for method in ("dis", "farneback", "tvl1"):
        check_flow_method(method)
