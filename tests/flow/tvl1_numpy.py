"""A plain NumPy TV-L1, written from the equations of stages/flow/tvl1.py's docstring (Zach,
Pock and Bischof; IPOL 2013 with OpenCV's choices), loop by loop and pair by pair: a reference
for the batched PyTorch scheme on tiny frames. Slow, float64, no shortcuts."""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

# A squared image gradient below this counts as zero (the docstring of tvl1.py).
FLAT = 1e-10


def resize_bilinear(image: np.ndarray, height: int, width: int, ratio_y: float,
                    ratio_x: float) -> np.ndarray:
    """(..., H, W) -> (..., height, width): output pixel centre i + 0.5 reads the input at
    (i + 0.5) * ratio - 0.5, bilinear between the two nearest pixels, indices clamped."""
    out = np.empty((*image.shape[:-2], height, width))
    rows, cols = image.shape[-2:]
    for i in range(height):
        y = (i + 0.5) * ratio_y - 0.5
        y0 = math.floor(y)
        ty = y - y0
        for j in range(width):
            x = (j + 0.5) * ratio_x - 0.5
            x0 = math.floor(x)
            tx = x - x0

            def at(r: int, c: int) -> np.ndarray:
                return image[..., min(max(r, 0), rows - 1), min(max(c, 0), cols - 1)]

            top = at(y0, x0) * (1 - tx) + at(y0, x0 + 1) * tx
            bottom = at(y0 + 1, x0) * (1 - tx) + at(y0 + 1, x0 + 1) * tx
            out[..., i, j] = top * (1 - ty) + bottom * ty
    return out


def centred_gradient(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (2, H, W): (I(x+1) - I(x-1)) / 2 along x and y, the border replicated."""
    padded = np.pad(image, 1, mode="edge")
    return np.stack([(padded[1:-1, 2:] - padded[1:-1, :-2]) / 2,
                     (padded[2:, 1:-1] - padded[:-2, 1:-1]) / 2])


def keys(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel."""
    t = np.abs(t)
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def warp_bicubic(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(H, W) read at (x + u, y + v): the 4 x 4 nearest pixels weighted by Keys' kernel, pixels
    outside the image read as zero."""
    height, width = image.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = x + u, y + v
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    out = np.zeros_like(x)
    for dy in range(-1, 3):
        for dx in range(-1, 3):
            cols, rows = x0 + dx, y0 + dy
            inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
            value = np.where(inside, image[rows.clip(0, height - 1), cols.clip(0, width - 1)], 0)
            out += keys(x - cols) * keys(y - rows) * value
    return out


def forward_gradient(field: np.ndarray) -> np.ndarray:
    """(H, W) -> (2, H, W): f(x+1) - f(x) along x and y, zero on the last column / row."""
    out = np.zeros((2, *field.shape))
    out[0, :, :-1] = field[:, 1:] - field[:, :-1]
    out[1, :-1, :] = field[1:, :] - field[:-1, :]
    return out


@functools.cache
def gradient_matrix(height: int, width: int) -> np.ndarray:
    """(2HW, HW): `forward_gradient` as a matrix, column by column."""
    columns = []
    for index in range(height * width):
        unit = np.zeros(height * width)
        unit[index] = 1
        columns.append(forward_gradient(unit.reshape(height, width)).ravel())
    return np.stack(columns, 1)


def divergence(dual: np.ndarray) -> np.ndarray:
    """(2, H, W) -> (H, W): minus the adjoint of `forward_gradient` (brute force)."""
    height, width = dual.shape[1:]
    return -(gradient_matrix(height, width).T @ dual.ravel()).reshape(height, width)


def median(field: np.ndarray, size: int) -> np.ndarray:
    """Median in size x size windows, the border replicated."""
    return ndimage.median_filter(field, size=size, mode="nearest")


def solve_level(previous: np.ndarray, current: np.ndarray, flow: np.ndarray,
                params) -> np.ndarray:
    """One pyramid level of one pair: flow (C, H, W), u, v (and w with gamma)."""
    tau, lam, theta = params.tau, params.lambda_, params.theta
    channels, height, width = flow.shape
    dual = np.zeros((channels, 2, height, width))  # p, the dual variable of each channel
    threshold = params.epsilon * math.sqrt(height * width)
    grad_current = centred_gradient(current)
    flow = flow.copy()
    for _ in range(params.warps):
        start = flow.copy()
        warped = warp_bicubic(current, start[0], start[1])
        grad = np.stack([warp_bicubic(g, start[0], start[1]) for g in grad_current])
        if channels == 3:
            grad = np.concatenate([grad, np.full((1, height, width), params.gamma)])
        squared = np.maximum(grad[0] ** 2 + grad[1] ** 2, FLAT)
        stopped = False
        for _ in range(params.outer_iterations):
            if params.median_filtering > 1:
                for c in range(2):
                    flow[c] = median(flow[c], params.median_filtering)
            for _ in range(params.inner_iterations):
                # rho = I1(x + u0) + grad . (u - u0) (+ gamma w) - I0
                rho = warped - previous + sum(grad[c] * (flow[c] - start[c]) for c in range(2))
                if channels == 3:
                    rho = rho + params.gamma * flow[2]
                step = np.clip(rho / squared, -lam * theta, lam * theta)
                data = flow - step * grad  # the pointwise data step, v
                new = np.stack([data[c] + theta * divergence(dual[c]) for c in range(channels)])
                for c in range(channels):
                    g = forward_gradient(new[c])
                    norm = np.sqrt(g[0] ** 2 + g[1] ** 2)
                    dual[c] = (dual[c] + tau / theta * g) / (1 + tau / theta * norm)
                moved = np.sqrt(((new - flow) ** 2).sum())
                flow = new
                if moved <= threshold:
                    stopped = True
                    break
            if stopped:
                break
    return flow


def tvl1(previous: np.ndarray, current: np.ndarray, params,
         initial: np.ndarray | None = None) -> np.ndarray:
    """(H, W) frames 0..255 -> (2, H, W) flow: the pyramid, coarse to fine."""
    step = params.scale_step
    levels = [(previous.astype(np.float64), current.astype(np.float64))]
    starts = [None if initial is None else initial.astype(np.float64)]
    for _ in range(params.nscales - 1):
        height, width = levels[-1][0].shape
        size = (max(1, round(height * step)), max(1, round(width * step)))
        levels.append(tuple(resize_bilinear(f, *size, 1 / step, 1 / step) for f in levels[-1]))
        if initial is not None:
            starts.append(resize_bilinear(starts[-1], *size, 1 / step, 1 / step) * step)
    channels = 3 if params.gamma > 0 else 2
    coarse = levels[-1][0].shape
    flow = np.zeros((channels, *coarse))
    if initial is not None:
        flow[:2] = starts[-1]
    for index in reversed(range(len(levels))):
        height, width = levels[index][0].shape
        if index < len(levels) - 1:  # from the coarser level: resized, u and v rescaled
            rows, cols = flow.shape[1:]
            flow = resize_bilinear(flow, height, width, rows / height, cols / width)
            flow[:2] /= step
        flow = solve_level(*levels[index], flow, params)
    return flow[:2]
