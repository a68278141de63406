"""TV-L1's pieces and its whole scheme against independent references on tiny frames: OpenCV's
resize, brute-force NumPy (Keys' kernel, the adjoint of the forward difference, SciPy's median)
and a loop-by-loop NumPy TV-L1 written from the module docstring's equations (tvl1_numpy.py).
Tiny frames and few iterations: each test takes milliseconds."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from stages.flow.tvl1 import (
    TVL1Params,
    _centred_gradient,
    _divergence,
    _forward_gradient,
    _median_filter,
    _pyramid,
    _resize_bilinear,
    _warp_bicubic,
    tvl1_flow,
    tvl1_video,
)
from tests.flow import tvl1_numpy as reference

# Few iterations, so that each warp, block and stop shows in the flow.
FEW = TVL1Params(nscales=2, warps=2, inner_iterations=3, outer_iterations=2, median_filtering=3,
                 epsilon=0.05)


def smooth_pair(height: int, width: int, shift: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(previous, current) (H, W) float64 0..255: a blurred random texture and the same moved
    `shift` px to the right."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (height + 8, width + 8)), (0, 0), 1.5)
    return big[4:4 + height, 4:4 + width], big[4:4 + height, 4 - shift:4 + width - shift]


def as_batch(frames: list[np.ndarray]) -> torch.Tensor:
    """(H, W) 0..255 arrays -> (B, H, W) float64 0..1 tensor."""
    return torch.from_numpy(np.stack(frames) / 255)


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_batched_flows_equal_the_numpy_reference(gamma: float):
    """Three pairs in one batch (1 px right, 1 px left, no motion) that stop after different
    numbers of steps: each pair's flow is the reference's, step for step (float64); with the
    illumination term also in float32 (where OpenCV's median filter serves)."""
    params = replace(FEW, gamma=gamma)
    pairs = [smooth_pair(12, 14, 1, 0), smooth_pair(12, 14, -1, 1), smooth_pair(12, 14, 0, 2)]
    expected = np.stack([reference.tvl1(p, c, params) for p, c in pairs])
    previous, current = as_batch([p for p, _ in pairs]), as_batch([c for _, c in pairs])
    double = tvl1_flow(previous, current, params, dtype=torch.float64)
    assert double.dtype == torch.float32 and double.shape == (3, 2, 12, 14)
    np.testing.assert_allclose(double.numpy(), expected, rtol=0, atol=1e-6)
    if gamma > 0:
        single = tvl1_flow(previous.float(), current.float(), params)
        np.testing.assert_allclose(single.numpy(), expected, rtol=0, atol=1e-4)
    assert expected[0, 0].mean() > 0.5 > -0.5 > expected[1, 0].mean()  # the motions show


def test_initial_flow_and_odd_sizes_equal_the_numpy_reference():
    """A start flow goes down the pyramid shrunk with the frames; three levels of 11 x 13
    (sizes rounded at each level), the default 5 x 5 median filter."""
    params = TVL1Params(nscales=3, warps=1, inner_iterations=4, outer_iterations=2,
                        scale_step=0.7, use_initial_flow=True)
    previous, current = smooth_pair(11, 13, 1, 3)
    rng = np.random.default_rng(4)
    start = cv2.GaussianBlur(rng.normal(0.8, 0.5, (11, 13, 2)), (0, 0), 2).transpose(2, 0, 1)
    expected = reference.tvl1(previous, current, params, initial=start)
    flow = tvl1_flow(as_batch([previous]), as_batch([current]), params,
                     initial_flow=torch.from_numpy(start)[None], dtype=torch.float64)
    np.testing.assert_allclose(flow[0].numpy(), expected, rtol=0, atol=1e-6)
    # A float32 start computes in the frames' dtype like any other: the same flow.
    from_single = tvl1_flow(as_batch([previous]), as_batch([current]), params,
                            initial_flow=torch.from_numpy(start)[None].float().double(),
                            dtype=torch.float64)
    assert torch.equal(tvl1_flow(as_batch([previous]), as_batch([current]), params,
                                 initial_flow=torch.from_numpy(start)[None].float(),
                                 dtype=torch.float64), from_single)


def test_resize_matches_opencvs_bilinear():
    """Pixel centres and the replicated border as cv2.resize(INTER_LINEAR): to a given size
    (up and down), and at a given ratio (the pyramid's, which is not the size ratio)."""
    image = np.random.default_rng(0).uniform(0, 1, (17, 21)).astype(np.float32)
    tensor = torch.from_numpy(image)[None]
    for height, width in ((7, 9), (30, 26)):
        by_opencv = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        resized = _resize_bilinear(tensor, (height, width))
        assert resized.dtype == torch.float32
        ours = resized[0].numpy()
        np.testing.assert_allclose(ours, by_opencv, rtol=0, atol=1e-5)
    by_opencv = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    assert by_opencv.shape == (14, 17)  # 13.6 and 16.8 rounded: not a ratio of 0.8
    ours = _resize_bilinear(tensor, (14, 17), 1 / 0.8)[0].numpy()
    np.testing.assert_allclose(ours, by_opencv, rtol=0, atol=1e-5)


def test_pyramid_levels_and_flow_rescaling():
    """Each level is the previous resized by the step (sizes rounded, never below 1 px); a flow
    pyramid also multiplies its values by the step at each level."""
    image = torch.from_numpy(np.random.default_rng(1).uniform(0, 1, (1, 2, 9, 5)))
    levels = _pyramid(image, 5, 0.6)
    assert [tuple(level.shape[-2:]) for level in levels] == [(9, 5), (5, 3), (3, 2), (2, 1),
                                                             (1, 1)]
    for finer, coarser in zip(levels[:-1], levels[1:]):
        expected = reference.resize_bilinear(finer.numpy(), *coarser.shape[-2:], 1 / 0.6,
                                             1 / 0.6)
        np.testing.assert_allclose(coarser.numpy(), expected, rtol=0, atol=1e-12)
    flows = _pyramid(image, 4, 0.6, rescale=True)
    for depth, (level, flow) in enumerate(zip(levels, flows)):
        assert torch.allclose(flow, level * 0.6**depth, atol=1e-12)
    assert len(_pyramid(image, 1, 0.6)) == 1
    # A steep step: sizes that round to 0 stay 1 px, and that pixel reads the one above.
    steep = _pyramid(image, 4, 0.3)
    assert [tuple(level.shape[-2:]) for level in steep] == [(9, 5), (3, 2), (1, 1), (1, 1)]
    assert torch.equal(steep[3], steep[2])


def test_centred_gradient_replicates_the_border():
    image = torch.tensor([[[0.0, 1.0, 4.0], [9.0, 16.0, 25.0]]])
    gradient = _centred_gradient(image)
    # Along x: (right - left) / 2, a missing neighbour replaced by the pixel itself.
    assert gradient[0, 0].tolist() == [[0.5, 2.0, 1.5], [3.5, 8.0, 4.5]]
    # Along y: two rows, so each difference is half of (row 1 - row 0).
    assert gradient[0, 1].tolist() == [[4.5, 7.5, 10.5], [4.5, 7.5, 10.5]]
    bigger = np.random.default_rng(2).uniform(0, 255, (6, 7))
    np.testing.assert_allclose(_centred_gradient(torch.from_numpy(bigger)[None])[0].numpy(),
                               reference.centred_gradient(bigger), rtol=0, atol=1e-12)


def test_bicubic_warp_is_keys_kernel_with_zeros_outside():
    """Sub-pixel and out-of-image positions against the 4 x 4 Keys sum; a zero flow gives the
    image back exactly, in float32 too."""
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 255, (2, 3, 6, 7))
    flow = rng.uniform(-2.5, 2.5, (2, 2, 6, 7))
    warped = _warp_bicubic(torch.from_numpy(images), torch.from_numpy(flow))
    assert warped.shape == (2, 3, 6, 7) and warped.dtype == torch.float64
    for b in range(2):
        for c in range(3):
            expected = reference.warp_bicubic(images[b, c], flow[b, 0], flow[b, 1])
            np.testing.assert_allclose(warped[b, c].numpy(), expected, rtol=0, atol=1e-9)
    single = torch.from_numpy(images).float()
    still = _warp_bicubic(single, torch.zeros(2, 2, 6, 7))
    assert still.dtype == torch.float32 and torch.equal(still, single)


def test_divergence_is_the_negative_adjoint_of_the_forward_gradient():
    rng = np.random.default_rng(5)
    field = torch.from_numpy(rng.normal(size=(2, 3, 5, 6)))
    out = torch.full((2, 3, 2, 5, 6), 7.0, dtype=torch.float64)
    out[:, :, 0, :, -1] = 0
    out[:, :, 1, -1, :] = 0
    gradient = _forward_gradient(field, out)
    assert gradient is out
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(gradient[n, c].numpy(),
                                          reference.forward_gradient(field[n, c].numpy()))
    dual = torch.from_numpy(rng.normal(size=(2, 3, 2, 5, 6)))
    dual[:, :, 0, :, -1] = 0  # zero across the last column / row, as the scheme keeps it
    dual[:, :, 1, -1, :] = 0
    divergence = _divergence(dual)
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(divergence[n, c].numpy(),
                                       reference.divergence(dual[n, c].numpy()), atol=1e-12)
    # <grad f, p> = -<f, div p>
    assert torch.allclose((gradient * dual).sum(), -(field * divergence).sum())


@pytest.mark.parametrize("size", [3, 5, 7])
def test_median_filter_of_many_planes_matches_scipy(size: int):
    """More planes than one chunk of the tensor path (float64), and a window OpenCV's float
    filter does not take (7, float32): SciPy's median with the border replicated."""
    flow = np.random.default_rng(6).normal(size=(9, 2, 8, 9))
    expected = np.stack([[reference.median(plane, size) for plane in sample] for sample in flow])
    for dtype in (torch.float64, torch.float32):
        filtered = _median_filter(torch.from_numpy(flow).to(dtype), size)
        assert filtered.dtype == dtype and filtered.shape == flow.shape
        np.testing.assert_allclose(filtered.double().numpy(), expected, rtol=0, atol=1e-6)


def test_frames_of_other_types_and_shapes_are_refused():
    frames = torch.zeros(1, 6, 6, dtype=torch.int16)
    with pytest.raises(ValueError, match="uint8 or floating point, not torch.int16"):
        tvl1_flow(frames, frames, FEW)
    with pytest.raises(ValueError, match=r"\(B, H, W\) tensors of one shape, got \(1, 6, 6\) "
                                         r"and \(1, 6, 7\)"):
        tvl1_flow(torch.zeros(1, 6, 6), torch.zeros(1, 6, 7), FEW)
    with pytest.raises(ValueError, match="got"):
        tvl1_flow(torch.zeros(6, 6), torch.zeros(6, 6), FEW)
    start = replace(FEW, use_initial_flow=True)
    with pytest.raises(ValueError) as refused:
        tvl1_flow(torch.zeros(1, 6, 6), torch.zeros(1, 6, 6), start,
                  initial_flow=torch.zeros(1, 2, 6, 5))
    assert str(refused.value) == "use_initial_flow needs initial_flow, (B, 2, H, W) like the frames"


def test_a_step_that_moves_nothing_stops_at_epsilon_zero():
    """Flat frames give no data term, so the first step from a start flow moves it by exactly
    0 px, which is "at most epsilon" even for epsilon 0: the start comes back unchanged (a
    ramp, which the median filter keeps). Another step would smooth its edges by TV."""
    params = TVL1Params(nscales=1, warps=1, inner_iterations=5, outer_iterations=1,
                        epsilon=0.0, use_initial_flow=True)
    ramp = torch.arange(7, dtype=torch.float32).repeat(1, 2, 6, 1) * 0.25
    flat = torch.full((1, 6, 7), 0.5)
    flow = tvl1_flow(flat, flat, params, initial_flow=ramp)
    assert torch.equal(flow, ramp)


def test_half_precision_frames_are_scaled_in_the_compute_dtype():
    """Frames of j / 256 are exact in float16 and float32; scaled to 0..255 in the compute
    dtype (float32) they give the same flow as float32 frames (in float16, j * 255 / 256 would
    be rounded to its 11 bits)."""
    previous, current = smooth_pair(8, 9, 1, 8)
    levels = [torch.from_numpy(np.floor(f)[None] / 256) for f in (previous, current)]
    expected = tvl1_flow(*(f.float() for f in levels), FEW)
    for halves in ((True, False), (False, True)):
        frames = [f.half() if half else f.float() for f, half in zip(levels, halves)]
        assert torch.equal(tvl1_flow(*frames, FEW), expected)


def test_empty_batches_and_unused_initial_flow():
    """No pairs: an empty (0, 2, H, W) float32 flow; a given initial flow is ignored unless
    use_initial_flow."""
    empty = tvl1_flow(torch.zeros(0, 5, 6), torch.zeros(0, 5, 6), FEW)
    assert empty.shape == (0, 2, 5, 6) and empty.dtype == torch.float32
    assert tvl1_video(torch.zeros(1, 5, 6), FEW).shape == (0, 2, 5, 6)
    previous, current = smooth_pair(8, 9, 1, 7)
    plain = tvl1_flow(as_batch([previous]), as_batch([current]), FEW)
    ignored = tvl1_flow(as_batch([previous]), as_batch([current]), FEW,
                        initial_flow=torch.full((1, 2, 8, 9), 5.0))
    assert torch.equal(plain, ignored)


def test_video_pairs_in_batches_of_any_size():
    """Five frames, batches of 2: the four consecutive pairs, each flow that of its pair."""
    frames = [smooth_pair(8, 9, 1, seed)[0] for seed in range(5)]
    video = as_batch(frames)
    flows = tvl1_video(video, FEW, batch_size=2, dtype=torch.float64)
    assert flows.shape == (4, 2, 8, 9)
    pairs = tvl1_flow(video[:-1], video[1:], FEW, dtype=torch.float64)
    np.testing.assert_allclose(flows.numpy(), pairs.numpy(), rtol=0, atol=1e-6)
    assert not torch.allclose(flows[0], flows[1], atol=0.1)  # the pairs differ


@pytest.mark.parametrize("field", ["tau", "lambda_", "theta", "nscales", "warps",
                                   "inner_iterations", "outer_iterations", "median_filtering"])
def test_counts_and_weights_must_be_positive(field: str):
    """Zero is refused, the least positive value (1 for counts, a small step for reals) taken."""
    with pytest.raises(ValueError, match=f"out of range: {field}[ ,]"):
        TVL1Params(**{field: 0})
    least = 1 if field in ("nscales", "warps", "inner_iterations", "outer_iterations",
                           "median_filtering") else 1e-3
    assert getattr(TVL1Params(**{field: least}), field) == least


def test_range_message_names_every_bad_field_and_the_rules():
    with pytest.raises(ValueError) as refused:
        TVL1Params(tau=0, epsilon=-0.1, gamma=-1.0, scale_step=0.0, median_filtering=2)
    assert str(refused.value) == (
        "TV-L1 parameters out of range: tau, epsilon, gamma, scale_step, median_filtering (tau, "
        "lambda_, theta, counts > 0; epsilon, gamma >= 0; 0 < scale_step < 1; median_filtering "
        "odd)")
    # The edges that are allowed.
    edge = TVL1Params(epsilon=0.0, gamma=0.0, scale_step=0.01, median_filtering=1)
    assert edge.scale_step == 0.01
    assert TVL1Params(scale_step=0.99).scale_step == 0.99
    with pytest.raises(ValueError, match="out of range: gamma "):
        TVL1Params(gamma=-1e-9)
    # Negative and odd: refused as not positive.
    with pytest.raises(ValueError, match="out of range: median_filtering "):
        TVL1Params(median_filtering=-1)
