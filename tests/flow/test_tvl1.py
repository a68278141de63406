"""TV-L1 in PyTorch on generated textures: known motions, batching, dtypes, parameters."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from stages.flow.tvl1 import TVL1Params, _median_filter, tvl1_flow, tvl1_video

SIZE = 64
# Enough iterations to reach the motion; tests of structure use fewer still.
QUICK = TVL1Params(nscales=3, warps=3, inner_iterations=10, outer_iterations=3)


def texture(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """A smooth random texture in 0..1 at any real (x, y): a sum of random plane waves of
    wavelengths 6 to 30 px, so that a sub-pixel motion can be rendered exactly."""
    rng = np.random.default_rng(seed)
    value = np.zeros_like(x, dtype=np.float64)
    for _ in range(24):
        frequency = rng.uniform(2 * math.pi / 30, 2 * math.pi / 6)
        angle = rng.uniform(0, 2 * math.pi)
        value += np.sin(frequency * (math.cos(angle) * x + math.sin(angle) * y)
                        + rng.uniform(0, 2 * math.pi))
    return 0.5 + 0.5 * value / np.abs(value).max()


def moved_pair(motion, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(previous, current) (H, W) float32 0..1 and the true flow (2, H, W): `motion` maps the
    pixel grid (x, y) to where each point of `previous` is in `current`."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    to_x, to_y = motion(x, y)
    # current(to(x, y)) = previous(x, y): render current by the inverse motion, found by
    # fixed-point iteration (the motions here are small and smooth).
    back_x, back_y = x.copy(), y.copy()
    for _ in range(30):
        moved_x, moved_y = motion(back_x, back_y)
        back_x, back_y = back_x + (x - moved_x), back_y + (y - moved_y)
    previous = texture(x, y, seed)
    current = texture(back_x, back_y, seed)
    truth = np.stack([to_x - x, to_y - y])
    return (torch.from_numpy(previous).float(), torch.from_numpy(current).float(), truth)


def interior_error(flow: torch.Tensor, truth: np.ndarray, margin: int = 8) -> float:
    """Median end-point error (px) away from the border, where points leave the image."""
    error = np.linalg.norm(flow.numpy() - truth, axis=0)
    return float(np.median(error[margin:-margin, margin:-margin]))


def test_subpixel_translation_is_recovered():
    previous, current, truth = moved_pair(lambda x, y: (x + 1.3, y - 0.6))
    flow = tvl1_flow(previous[None], current[None])[0]
    assert flow.shape == (2, SIZE, SIZE) and flow.dtype == torch.float32
    assert interior_error(flow, truth) < 0.08
    assert abs(float(flow[0].median()) - 1.3) < 0.05
    assert abs(float(flow[1].median()) + 0.6) < 0.05


def test_small_rotation_is_recovered():
    angle, centre = math.radians(3.0), (SIZE - 1) / 2

    def rotation(x, y):
        dx, dy = x - centre, y - centre
        return (centre + math.cos(angle) * dx - math.sin(angle) * dy,
                centre + math.sin(angle) * dx + math.cos(angle) * dy)

    previous, current, truth = moved_pair(rotation, seed=1)
    flow = tvl1_flow(previous[None], current[None])[0]
    assert np.abs(truth).max() > 1.5  # the motion reaches well past a pixel at the corners
    assert interior_error(flow, truth) < 0.1


def test_batch_equals_pairs_one_at_a_time():
    motions = [lambda x, y: (x + 0.4, y), lambda x, y: (x - 1.1, y + 0.8),
               lambda x, y: (x, y)]  # the still pair converges first and leaves the batch
    pairs = [moved_pair(motion, seed) for seed, motion in enumerate(motions)]
    previous = torch.stack([p for p, _, _ in pairs])
    current = torch.stack([c for _, c, _ in pairs])
    params = TVL1Params(nscales=3, warps=2, inner_iterations=10, outer_iterations=2,
                        epsilon=0.01)
    together = tvl1_flow(previous, current, params)
    for index in range(len(pairs)):
        alone = tvl1_flow(previous[index:index + 1], current[index:index + 1], params)
        torch.testing.assert_close(together[index:index + 1], alone, rtol=0, atol=1e-5)
    assert together[2].abs().max() < 1e-3  # identical frames: no motion


def test_video_flows_are_consecutive_pairs_whatever_the_batch():
    previous, current, _ = moved_pair(lambda x, y: (x + 0.5, y + 0.5))
    frames = torch.stack([previous, current, previous, current])
    by_two = tvl1_video(frames, QUICK, batch_size=2)
    by_all = tvl1_video(frames, QUICK, batch_size=16)
    assert by_two.shape == (3, 2, SIZE, SIZE)
    torch.testing.assert_close(by_two, by_all, rtol=0, atol=1e-5)
    torch.testing.assert_close(by_two[0], tvl1_flow(frames[:1], frames[1:2], QUICK)[0],
                               rtol=0, atol=1e-5)
    assert tvl1_video(frames[:1], QUICK).shape == (0, 2, SIZE, SIZE)


def test_uint8_frames_read_as_0_to_255_and_float_frames_as_0_to_1():
    previous, current, _ = moved_pair(lambda x, y: (x + 0.7, y))
    as_bytes = [(f * 255).round().to(torch.uint8)[None] for f in (previous, current)]
    as_floats = [f.float() / 255 for f in as_bytes]
    torch.testing.assert_close(tvl1_flow(*as_bytes, QUICK), tvl1_flow(*as_floats, QUICK),
                               rtol=0, atol=1e-5)


def test_dtype_switch():
    """float32 is the default arithmetic, float64 the alternative (same flow up to rounding,
    output float32 either way); half precision is refused; autocast changes nothing."""
    previous, current, truth = moved_pair(lambda x, y: (x + 0.9, y - 0.4))
    single = tvl1_flow(previous[None], current[None], QUICK)
    double = tvl1_flow(previous[None], current[None], QUICK, dtype=torch.float64)
    assert single.dtype == double.dtype == torch.float32
    assert (single - double).norm(dim=1).mean() < 0.01
    assert interior_error(double[0], truth) < 0.05
    for half in (torch.bfloat16, torch.float16):
        with pytest.raises(ValueError, match="float32 or float64"):
            tvl1_flow(previous[None], current[None], QUICK, dtype=half)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = tvl1_flow(previous[None], current[None], QUICK)
    assert torch.equal(autocast, single)


def test_illumination_term_and_initial_flow():
    previous, current, truth = moved_pair(lambda x, y: (x + 0.8, y + 0.3))
    brighter = (current + 0.06)[None]  # 15 grey levels: the constancy of brightness fails
    without = tvl1_flow(previous[None], brighter, TVL1Params())
    with_gamma = tvl1_flow(previous[None], brighter, TVL1Params(gamma=1.0))
    assert interior_error(without[0], truth) > 0.3
    assert interior_error(with_gamma[0], truth) < 0.1
    # Five steps at one scale cannot reach the motion from zero; from the truth they stay.
    few = TVL1Params(nscales=1, warps=1, inner_iterations=5, outer_iterations=1)
    start = torch.from_numpy(truth).float()[None]
    from_zero = tvl1_flow(previous[None], current[None], few)
    from_truth = tvl1_flow(previous[None], current[None], replace(few, use_initial_flow=True),
                           initial_flow=start)
    assert interior_error(from_zero[0], truth) > 0.3
    assert interior_error(from_truth[0], truth) < 0.1
    with pytest.raises(ValueError, match="initial_flow"):
        tvl1_flow(previous[None], current[None], replace(few, use_initial_flow=True))


@pytest.mark.parametrize("size", [3, 5])
def test_median_filter_of_other_devices_matches_opencvs(size):
    """The tensor path (CUDA, float64) picks the same values as OpenCV's (CPU, float32)."""
    flow = torch.randn(3, 2, 23, 31)
    by_opencv = _median_filter(flow, size)
    by_tensors = _median_filter(flow.double(), size).float()
    assert torch.equal(by_opencv, by_tensors)
    assert torch.equal(by_opencv[0, 0, 5, 5], flow[0, 0, 5 - size // 2:6 + size // 2,
                                                   5 - size // 2:6 + size // 2].median())


@pytest.mark.parametrize("field, value", [("scale_step", 1.0), ("median_filtering", 4),
                                          ("tau", 0.0), ("epsilon", -1.0), ("nscales", 0)])
def test_parameters_out_of_range_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TVL1Params(**{field: value})


def test_opencv_defaults():
    assert TVL1Params() == TVL1Params(
        tau=0.25, lambda_=0.15, theta=0.3, nscales=5, warps=5, epsilon=0.01,
        inner_iterations=30, outer_iterations=10, scale_step=0.8, gamma=0.0,
        median_filtering=5, use_initial_flow=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    previous, current, _ = moved_pair(lambda x, y: (x + 0.6, y - 0.3))
    on_cpu = tvl1_flow(previous[None], current[None], QUICK)
    on_gpu = tvl1_flow(previous[None].cuda(), current[None].cuda(), QUICK)
    assert on_gpu.device.type == "cuda"
    assert (on_gpu.cpu() - on_cpu).norm(dim=1).mean() < 1e-3
