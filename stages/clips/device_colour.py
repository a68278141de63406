"""The colour half of a clip's augmentation (jitter in its drawn order, grayscale, blur) in
torch, on a batch of clips wherever it sits: `pretrain.colour_on: device` moves this work from
the loader workers to the GPU, which does it in a fraction of a step.

The operations are those of `augment.py`, on levels 0..255 rounded and clipped after each
one as OpenCV's saturating uint8 arithmetic does, so both paths give the same distribution of
clips; they differ by rounding (measured in tests/clips/test_device_colour.py). A worker sends
each clip's draw as `colour_parameters`: 4 jitter slots (operation 0-3 or -1 for none, in
application order), their 4 factors, grayscale and blur flags.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from stages.clips.augment import BLUR_KERNEL, BLUR_SIGMA, ClipAugmentation

COLOUR_FIELDS = 10
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # OpenCV's RGB -> gray


def colour_parameters(augmentation: ClipAugmentation | None) -> torch.Tensor:
    """(COLOUR_FIELDS,) float32: a draw's colour operations, as `apply_colour` reads them;
    None gives a clip that takes none."""
    slots = [-1.0] * 4
    factors = [0.0] * 4
    if augmentation is None:
        return torch.tensor([*slots, *factors, 0.0, 0.0], dtype=torch.float32)
    for slot, (operation, factor) in enumerate(augmentation.jitter):
        slots[slot], factors[slot] = float(operation), factor
    return torch.tensor([*slots, *factors, float(augmentation.grayscale),
                         float(augmentation.blur)], dtype=torch.float32)


def _levels(x: torch.Tensor) -> torch.Tensor:
    """Round and clip to uint8 levels, kept in float."""
    return x.round_().clamp_(0, 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(n, 3, T, S, S) levels -> (n, 1, T, S, S) gray levels, rounded as OpenCV does."""
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device).view(1, 3, 1, 1, 1)
    return _levels((x * weights).sum(dim=1, keepdim=True))


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x * factor


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = _gray(x).mean(dim=(3, 4), keepdim=True)  # each frame's mean gray level
    return x * factor + (1 - factor) * mean


def _saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x * factor + (1 - factor) * _gray(x)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Turn the hue by `shift` of the circle, quantised to 1/256 as OpenCV's full-range uint8
    hue is (the value and saturation stay)."""
    turn = torch.remainder(torch.round(shift * 256), 256) / 256
    high, _ = x.max(dim=1, keepdim=True)
    low, _ = x.min(dim=1, keepdim=True)
    span = high - low
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    safe = torch.where(span > 0, span, torch.ones_like(span))
    hue = torch.where(high == r, (g - b) / safe,
                      torch.where(high == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.remainder(hue / 6 + turn, 1.0) * 6  # sector 0..6
    sector = torch.floor(hue)
    fraction = hue - sector
    rising, falling = low + span * fraction, high - span * fraction
    sector = sector.long() % 6
    choices = [(high, rising, low), (falling, high, low), (low, high, rising),
               (low, falling, high), (rising, low, high), (high, low, falling)]
    out = torch.zeros_like(x)
    for index, (red, green, blue) in enumerate(choices):
        where = sector == index
        out[:, 0:1] = torch.where(where, red, out[:, 0:1])
        out[:, 1:2] = torch.where(where, green, out[:, 1:2])
        out[:, 2:3] = torch.where(where, blue, out[:, 2:3])
    return out


_OPERATIONS = (_brightness, _contrast, _saturation, _hue)


@functools.cache
def _blur_kernel(device: torch.device) -> torch.Tensor:
    """(BLUR_KERNEL,) float32 Gaussian weights of sigma BLUR_SIGMA (OpenCV's formula)."""
    centre = (BLUR_KERNEL - 1) / 2
    weights = torch.tensor([math.exp(-((i - centre) ** 2) / (2 * BLUR_SIGMA ** 2))
                            for i in range(BLUR_KERNEL)])
    return (weights / weights.sum()).to(device)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of every frame, borders reflected without repeating the edge
    (OpenCV's default)."""
    n, channels, frames, height, width = x.shape
    planes = x.reshape(n * channels * frames, 1, height, width)
    kernel = _blur_kernel(x.device)
    half = BLUR_KERNEL // 2
    planes = F.conv2d(F.pad(planes, (half, half, 0, 0), mode="reflect"),
                      kernel.view(1, 1, 1, -1))
    planes = F.conv2d(F.pad(planes, (0, 0, half, half), mode="reflect"),
                      kernel.view(1, 1, -1, 1))
    return planes.reshape(n, channels, frames, height, width)


def apply_colour(clips: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
    """Each clip's colour operations. (N, 3, T, S, S) uint8 on any device, with (N,
    COLOUR_FIELDS) float32 parameters on the CPU (as the loader made them: which clips take
    which operation is decided there, so the device never waits to be asked) -> (N, 3, T, S,
    S) uint8 on the clips' device."""
    x = clips.float()
    slots, factors = parameters[:, :4].long(), parameters[:, 4:8]

    def on_device(rows: torch.Tensor) -> torch.Tensor:
        return rows.to(x.device, non_blocking=True)

    for slot in range(4):
        for operation, function in enumerate(_OPERATIONS):
            chosen = torch.nonzero(slots[:, slot] == operation).flatten()
            if len(chosen):
                factor = on_device(factors[chosen, slot]).view(-1, 1, 1, 1, 1)
                rows = on_device(chosen)
                x[rows] = _levels(function(x[rows], factor))
    gray = torch.nonzero(parameters[:, 8] > 0).flatten()
    if len(gray):
        rows = on_device(gray)
        x[rows] = _gray(x[rows]).expand(-1, 3, -1, -1, -1)
    blurred = torch.nonzero(parameters[:, 9] > 0).flatten()
    if len(blurred):
        rows = on_device(blurred)
        x[rows] = _levels(_blur(x[rows]))
    return x.to(torch.uint8)
