"""TV-L1 optical flow in PyTorch: a batch of frame pairs at once, on the frames' device.

The duality-based scheme of Zach, Pock and Bischof ("A duality based approach for realtime
TV-L1 optical flow", 2007) as written out by Sánchez, Meinhardt-Llopis and Facciolo ("TV-L1
Optical Flow Estimation", IPOL 2013), with the parameters and defaults of OpenCV's
DualTVL1OpticalFlow. Where OpenCV's flows show other choices than IPOL's (found by comparing
outputs step by step: one iteration, one warp, one level at a time), OpenCV's are taken, so
that the two agree (benchmarks/bench_tvl1.py measures how closely):

* intensities 0..255, not normalised: uint8 frames as they are, floating-point frames read as
  0..1 and multiplied by 255 (as OpenCV reads them);
* pyramid: each level is the one above resized by `scale_step` (sizes rounded) with bilinear
  interpolation between pixel centres and no pre-smoothing (IPOL smooths with a Gaussian and
  zooms bicubically); the flow goes to the finer level by bilinear resizing to its size and
  division by `scale_step`;
* the image gradient is a centred difference with the border replicated; the flow's gradient
  a forward difference (zero across the last row and column), the divergence its negative
  adjoint;
* warping of I1 and of its gradient: bicubic (Keys, a = -0.75) at the exact positions, zero
  outside the image;
* each warp runs up to `outer_iterations` blocks of `inner_iterations` steps, each block after a
  median filter of the flow; a pair stops as soon as one step moves its flow by at most
  `epsilon` pixels (root mean square over the level); the dual variables are kept across the
  warps of a level and start at zero on each level.

With `gamma` > 0 the data term gets an illumination variable w (Chambolle and Pock 2011),
rho = I1(x + u0) + grad I1 . (u - u0) + gamma w - I0, regularised by TV like u, as OpenCV's:
the thresholds of the data step use |grad I1|^2 (without gamma^2), w is not median-filtered,
counts in the stopping test, and goes to the finer level resized but not rescaled.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

COMPUTE_DTYPES = (torch.float32, torch.float64)
# A squared image gradient below this counts as zero (no data term there).
_FLAT = 1e-10
# Planes median-filtered at once by the tensor path (bounds its (planes, k*k, H*W) buffer).
_MEDIAN_CHUNK = 16
# On CPU a batch runs in chunks of about this many pixels a frame, whose working set stays in
# cache (measured on a 2-core EPYC: 8 pairs a chunk at 170x128 were 1.6x faster a pair than 1,
# 1.3x faster than 16; at 320x240, 2 were 1.1x faster than 1 and 1.6x faster than 16).
_CPU_CHUNK_PIXELS = 160_000


@dataclass(frozen=True)
class TVL1Params:
    """The parameters of OpenCV's DualTVL1OpticalFlow, named in snake case, with its defaults.

    tau: time step of the dual update (<= 0.25 converges). lambda_: weight of the data term;
    smaller gives smoother flow. theta: coupling of the flow u to its auxiliary v. nscales:
    pyramid levels. warps: re-linearisations of the data term per level. epsilon: stopping
    threshold, in pixels per step (root mean square). inner_iterations: steps between two median
    filters. outer_iterations: blocks of inner steps per warp. scale_step: size ratio of two
    levels (< 1). gamma: weight of the illumination variable (0: none). median_filtering: window
    side of the median filter (1: none). use_initial_flow: start from a given flow.
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5
    use_initial_flow: bool = False

    def __post_init__(self) -> None:
        positive = ("tau", "lambda_", "theta", "nscales", "warps", "inner_iterations",
                    "outer_iterations", "median_filtering")
        bad = [f.name for f in fields(self) if f.name in positive and getattr(self, f.name) <= 0]
        bad += [name for name in ("epsilon", "gamma") if getattr(self, name) < 0]
        if not 0 < self.scale_step < 1:
            bad.append("scale_step")
        if self.median_filtering % 2 == 0:
            bad.append("median_filtering")
        if bad:
            raise ValueError(f"TV-L1 parameters out of range: {', '.join(bad)} (tau, lambda_, "
                             "theta, counts > 0; epsilon, gamma >= 0; 0 < scale_step < 1; "
                             "median_filtering odd)")


def tvl1_flow(previous: Tensor, current: Tensor, params: TVL1Params = TVL1Params(), *,
              initial_flow: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """TV-L1 flow from each `previous` frame to its `current` frame, all pairs at once.

    previous, current: (B, H, W) gray frames on one device, uint8 (0..255) or floating point
    (0..1). initial_flow: (B, 2, H, W) pixels, the start when `params.use_initial_flow`.
    dtype: the arithmetic, float32 (default, as OpenCV) or float64. Half precision is refused:
    the scheme's steps (~1e-3 px) vanish at its resolution; an autocast region around the call
    changes nothing. Pairs are independent: a pair's flow does not depend on the rest of the
    batch. Returns (B, 2, H, W) float32 (u, v) on the frames' device: current(x + u, y + v)
    matches previous(x, y).
    """
    if previous.shape != current.shape or previous.dim() != 3:
        raise ValueError(f"frames must be two (B, H, W) tensors of one shape, got "
                         f"{tuple(previous.shape)} and {tuple(current.shape)}")
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"TV-L1 computes in float32 or float64, not {dtype}")
    count, height, width = previous.shape
    start = initial_flow if params.use_initial_flow else None
    if params.use_initial_flow and (start is None or start.shape != (count, 2, height, width)):
        raise ValueError("use_initial_flow needs initial_flow, (B, 2, H, W) like the frames")
    # On CPU, chunks whose working set stays in cache (pairs are independent: same flows).
    size = count if previous.device.type != "cpu" else _CPU_CHUNK_PIXELS // (height * width)
    size = max(size, 1)
    with torch.no_grad(), torch.autocast(previous.device.type, enabled=False):
        flows = [_flow_chunk(previous[i:i + size], current[i:i + size],
                             None if start is None else start[i:i + size], params, dtype)
                 for i in range(0, count, size)]
    return torch.cat(flows) if flows else torch.zeros(0, 2, height, width,
                                                      device=previous.device)


def tvl1_video(frames: Tensor, params: TVL1Params = TVL1Params(), *, batch_size: int = 64,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """Flows between consecutive frames: (T, H, W) frames -> (T - 1, 2, H, W) float32 pixels,
    `tvl1_flow` of frames[:-1] and frames[1:] `batch_size` pairs at a time (this bounds the
    memory on a GPU; the flows do not depend on it)."""
    previous, current = frames[:-1], frames[1:]
    return torch.cat([tvl1_flow(previous[i:i + batch_size], current[i:i + batch_size], params,
                                dtype=dtype) for i in range(0, max(len(previous), 1), batch_size)])


def _flow_chunk(previous: Tensor, current: Tensor, start: Tensor | None, params: TVL1Params,
                dtype: torch.dtype) -> Tensor:
    """`tvl1_flow` of one chunk of pairs, all at once."""
    frames = torch.stack([_intensities(previous, dtype), _intensities(current, dtype)], 1)
    levels = _pyramid(frames, params.nscales, params.scale_step)
    if start is not None:
        flow = _pyramid(start.to(frames), params.nscales, params.scale_step, rescale=True)[-1]
    else:
        flow = frames.new_zeros(len(frames), 2, *levels[-1].shape[-2:])
    if params.gamma > 0:  # the illumination w rides along as a third channel
        flow = torch.cat([flow, torch.zeros_like(flow[:, :1])], 1)
    for index in reversed(range(len(levels))):
        if index < len(levels) - 1:
            flow = _resize_bilinear(flow, levels[index].shape[-2:])
            flow[:, :2] /= params.scale_step
        flow = _solve_level(levels[index], flow, params)
    return flow[:, :2].float()


def _intensities(frames: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, H, W) uint8 or float 0..1 -> (B, H, W) `dtype` 0..255."""
    if frames.dtype == torch.uint8:
        return frames.to(dtype)
    if not frames.is_floating_point():
        raise ValueError(f"frames must be uint8 or floating point, not {frames.dtype}")
    return frames.to(dtype) * 255


def _pyramid(images: Tensor, levels: int, step: float, rescale: bool = False) -> list[Tensor]:
    """(B, C, H, W) and its `levels` - 1 successive reductions by `step`, finest first; with
    `rescale` (a flow) the values shrink with the size."""
    pyramid = [images]
    for _ in range(levels - 1):
        height, width = pyramid[-1].shape[-2:]
        size = (max(1, round(height * step)), max(1, round(width * step)))
        smaller = _resize_bilinear(pyramid[-1], size, 1 / step)
        pyramid.append(smaller * step if rescale else smaller)
    return pyramid


def _resize_bilinear(images: Tensor, size: tuple[int, int], scale: float | None = None) -> Tensor:
    """(..., H, W) -> (..., h, w) by bilinear interpolation between pixel centres, the border
    replicated. `scale`: input pixels per output pixel (default: the size ratio per axis)."""
    for dim, count in ((-1, size[1]), (-2, size[0])):
        length = images.shape[dim]
        ratio = scale if scale is not None else length / count
        centres = torch.arange(count, dtype=torch.float64, device=images.device) + 0.5
        position = centres * ratio - 0.5
        below = position.floor()
        weight = (position - below).to(images.dtype)
        below = below.long()
        left = images.index_select(dim, below.clamp(0, length - 1))
        right = images.index_select(dim, (below + 1).clamp(0, length - 1))
        weight = weight if dim == -1 else weight[:, None]
        images = left + (right - left) * weight
    return images


def _centred_gradient(images: Tensor) -> Tensor:
    """(B, H, W) -> (B, 2, H, W) (d/dx, d/dy) by centred differences, the border replicated."""
    padded = F.pad(images[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    along_x = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) * 0.5
    along_y = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) * 0.5
    return torch.stack([along_x, along_y], 1)


def _warp_bicubic(images: Tensor, flow: Tensor) -> Tensor:
    """(B, C, H, W) sampled at (x + u, y + v) for flow (B, 2, H, W): (B, C, H, W), bicubic
    (Keys, a = -0.75), zero outside the image.

    The positions are x + u in the flow's dtype (as OpenCV's float map), then grid_sample
    runs in float64: in float32 its [-1, 1] coordinates round the positions by up to ~1e-5 px,
    enough for a zero flow not to give the image back and for the flows to drift from
    OpenCV's. (MPS has no float64; there it stays in float32.)
    """
    height, width = images.shape[-2:]
    x = torch.arange(width, dtype=flow.dtype, device=flow.device) + flow[:, 0]
    y = torch.arange(height, dtype=flow.dtype, device=flow.device)[:, None] + flow[:, 1]
    exact = torch.float64 if images.device.type != "mps" else images.dtype
    x, y = x.to(exact), y.to(exact)
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], -1)
    return F.grid_sample(images.to(exact), grid, mode="bicubic", padding_mode="zeros",
                         align_corners=False).to(images.dtype)


def _median_filter(flow: Tensor, size: int) -> Tensor:
    """(N, C, H, W) -> (N, C, H, W): each plane's median in size x size windows, the border
    replicated. On CPU in float32 OpenCV's filter does it (same values, much faster)."""
    if flow.device.type == "cpu" and flow.dtype == torch.float32 and size in (3, 5):
        planes = flow.contiguous().numpy()
        return torch.from_numpy(np.stack([[cv2.medianBlur(p, size) for p in sample]
                                          for sample in planes]))
    n, c, height, width = flow.shape
    radius = size // 2
    planes = F.pad(flow.reshape(n * c, 1, height, width), (radius,) * 4, mode="replicate")
    medians = [F.unfold(chunk, size).median(1).values for chunk in planes.split(_MEDIAN_CHUNK)]
    return torch.cat(medians).view(n, c, height, width)


def _forward_gradient(flow: Tensor, out: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, 2, H, W) forward differences, written into `out`, whose last
    column (d/dx) and last row (d/dy) must be zero."""
    torch.sub(flow[..., 1:], flow[..., :-1], out=out[:, :, 0, :, :-1])
    torch.sub(flow[..., 1:, :], flow[..., :-1, :], out=out[:, :, 1, :-1, :])
    return out


def _divergence(dual: Tensor) -> Tensor:
    """(N, C, 2, H, W) -> (N, C, H, W), the negative adjoint of `_forward_gradient` (the dual
    field is zero across the last column/row, as the gradients it accumulates)."""
    along_x, along_y = dual[:, :, 0], dual[:, :, 1]
    divergence = along_x + along_y
    divergence[..., 1:] -= along_x[..., :-1]
    divergence[..., 1:, :] -= along_y[..., :-1, :]
    return divergence


def _solve_level(frames: Tensor, flow: Tensor, params: TVL1Params) -> Tensor:
    """One pyramid level: frames (B, 2, H, W) (previous, current), flow (B, C, H, W) the
    start (u, v, and w when gamma > 0); returns it (B, C, H, W) after `params.warps` warps."""
    previous, current = frames[:, 0], frames[:, 1]
    count, _, height, width = frames.shape
    sources = torch.cat([current[:, None], _centred_gradient(current)], 1)
    # The dual variable times theta (the divergence step then needs no multiplication).
    dual = flow.new_zeros(count, flow.shape[1], 2, height, width)
    threshold = params.epsilon * (height * width) ** 0.5
    for _ in range(params.warps):
        warped = _warp_bicubic(sources, flow[:, :2])
        gradient = warped[:, 1:]
        constant = warped[:, 0] - (gradient * flow[:, :2]).sum(1) - previous
        if params.gamma > 0:
            gradient = torch.cat([gradient, torch.full_like(constant, params.gamma)[:, None]], 1)
        flow, dual = _minimise(flow, dual, gradient, constant, threshold, params)
    return flow


def _minimise(flow: Tensor, dual: Tensor, gradient: Tensor, constant: Tensor, threshold: float,
              params: TVL1Params) -> tuple[Tensor, Tensor]:
    """The iterations of one warp. flow (B, C, H, W) and dual (B, C, 2, H, W) (times theta),
    C = 2, or 3 with the illumination; gradient (B, C, H, W) and constant (B, H, W) of the
    linearised data term rho = constant + gradient . flow; a pair stops when its flow moves by
    at most `threshold` (root sum of squares) in a step. Pairs that stop leave the working
    batch, so each pair does what it would alone. Returns the updated (flow, dual); `dual` is
    updated in place too."""
    # rho / |grad I1|^2 = scaled_constant + scaled_gradient . flow; the thresholds use
    # |grad I1|^2 without gamma^2, as OpenCV's do.
    inverse = 1 / gradient[:, :2].square().sum(1).clamp_min(_FLAT)
    work = [flow, dual, gradient, gradient * inverse[:, None], constant * inverse]
    scratch = torch.zeros_like(dual)
    todo = torch.arange(len(flow), device=flow.device)
    flow, dual = torch.empty_like(flow), torch.empty_like(dual)  # each row written once done
    for _ in range(params.outer_iterations):
        if params.median_filtering > 1:  # of u and v, not w, as OpenCV's
            smooth = _median_filter(work[0][:, :2], params.median_filtering)
            work[0] = torch.cat([smooth, work[0][:, 2:]], 1) if len(work[0][0]) > 2 else smooth
        for _ in range(params.inner_iterations):
            work[0], change = _step(*work, scratch, params)
            moving = change > threshold
            if not bool(moving.all()):
                flow.index_copy_(0, todo, work[0])
                dual.index_copy_(0, todo, work[1])
                keep = moving.nonzero()[:, 0]
                if len(keep) == 0:
                    return flow, dual
                todo = todo[keep]
                work = [part[keep] for part in work]
                scratch = scratch[keep]
    flow.index_copy_(0, todo, work[0])
    dual.index_copy_(0, todo, work[1])
    return flow, dual


def _step(flow: Tensor, dual: Tensor, gradient: Tensor, scaled_gradient: Tensor,
          scaled_constant: Tensor, scratch: Tensor, params: TVL1Params) -> tuple[Tensor, Tensor]:
    """One iteration: the pointwise data step (v), the TV step (u) and the dual ascent, which
    updates `dual` in place. Shapes as `_minimise`'s; scaled_* are the data term's divided by
    |grad I1|^2; scratch is like dual, zero across the last column and row. Returns the new
    flow and the (N,) root sum of squares of its change."""
    reach = params.lambda_ * params.theta
    shift = torch.addcmul(scaled_constant, scaled_gradient[:, 0], flow[:, 0])
    for channel in range(1, flow.shape[1]):
        shift.addcmul_(scaled_gradient[:, channel], flow[:, channel])
    shift = shift.clamp_(-reach, reach)[:, None]
    change = _divergence(dual).addcmul_(shift, gradient, value=-1)
    new = flow + change
    differences = _forward_gradient(new, scratch)
    along_x, along_y = differences[:, :, 0], differences[:, :, 1]
    # sqrt(x^2 + y^2) in three passes: 2x faster on CPU than torch.hypot's overflow-safe one.
    norms = along_x.square().addcmul_(along_y, along_y).sqrt_()
    norms = norms.mul_(params.tau / params.theta).add_(1)[:, :, None]
    dual.add_(differences, alpha=params.tau).div_(norms)
    return new, torch.linalg.vector_norm(change, dim=(1, 2, 3))
