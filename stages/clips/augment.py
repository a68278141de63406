"""Spatial augmentation drawn once per clip and applied to all its frames in one tensor op.

Order as the official SLIC code: random resized crop, horizontal flip, colour jitter (random
order), grayscale, Gaussian blur, then ImageNet normalisation. Flow clips (one channel,
replicated to three) go through the same drawn parameters, as the official code does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)
BLUR_KERNEL, BLUR_SIGMA = 15, 2.0


@dataclass(frozen=True)
class AugmentSettings:
    """Strengths of the clip augmentation (defaults: the official SLIC values)."""

    crop_size: int = 128
    min_crop_area: float = 0.25
    jitter: float = 0.5  # brightness, contrast and saturation strength
    hue: float = 0.5
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2
    blur_probability: float = 0.2


@dataclass(frozen=True)
class ClipAugmentation:
    """One draw of augmentation parameters, to apply to every frame of a clip."""

    box: tuple[int, int, int, int]  # top, left, height, width in source pixels
    flip: bool
    jitter: tuple[tuple[int, float], ...]  # (operation 0-3, factor), in application order
    grayscale: bool
    blur: bool


def draw_augmentation(height: int, width: int, settings: AugmentSettings,
                      rng: np.random.Generator) -> ClipAugmentation:
    """Draw crop box, flip, jitter, grayscale and blur for a clip of H x W frames."""
    box = _random_resized_crop(height, width, settings.min_crop_area, rng)
    flip = bool(rng.random() < 0.5)
    jitter: tuple[tuple[int, float], ...] = ()
    if rng.random() < settings.jitter_probability:
        strengths = (settings.jitter, settings.jitter, settings.jitter, settings.hue)
        factors = [float(rng.uniform(max(0.0, 1 - s), 1 + s)) for s in strengths[:3]]
        factors.append(float(rng.uniform(-strengths[3], strengths[3])))
        order = rng.permutation(4)
        jitter = tuple((int(op), factors[op]) for op in order if strengths[op] > 0)
    grayscale = bool(rng.random() < settings.grayscale_probability)
    blur = bool(rng.random() < settings.blur_probability)
    return ClipAugmentation(box, flip, jitter, grayscale, blur)


def _random_resized_crop(height: int, width: int, min_area: float,
                         rng: np.random.Generator) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box sampling (area, log-uniform ratio 3/4..4/3)."""
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(min_area, 1.0)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def to_float_clip(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) or (T, H, W) uint8 -> (T, 3, H, W) float32 in 0..1 (gray replicated)."""
    clip = torch.from_numpy(np.ascontiguousarray(frames))
    clip = clip.unsqueeze(-1).expand(*clip.shape, 3) if clip.ndim == 3 else clip
    return clip.permute(0, 3, 1, 2).float().div_(255.0)


def _normalise(clip: torch.Tensor) -> torch.Tensor:
    """(T, 3, S, S) in 0..1 -> (3, T, S, S) ImageNet-normalised, the layout the models take."""
    return (clip.permute(1, 0, 2, 3) - IMAGENET_MEAN) / IMAGENET_STD


_JITTER_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def augment_clip(frames: np.ndarray, augmentation: ClipAugmentation, size: int) -> torch.Tensor:
    """Apply one augmentation draw to a clip. (T, H, W[, 3]) uint8 -> (3, T, S, S) float32."""
    top, left, h, w = augmentation.box
    clip = to_float_clip(frames[:, top:top + h, left:left + w])
    clip = F.interpolate(clip, size=(size, size), mode="bilinear", align_corners=False)
    if augmentation.flip:
        clip = clip.flip(-1)
    for operation, factor in augmentation.jitter:
        clip = _JITTER_OPS[operation](clip, factor)
    if augmentation.grayscale:
        clip = TF.rgb_to_grayscale(clip, num_output_channels=3)
    if augmentation.blur:
        clip = TF.gaussian_blur(clip, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])
    return _normalise(clip.clamp(0.0, 1.0))


def centre_crop_clip(frames: np.ndarray, size: int) -> torch.Tensor:
    """Evaluation view: resize the short side to S, centre crop S x S.

    (T, H, W[, 3]) uint8 -> (3, T, S, S) float32, normalised.
    """
    clip = to_float_clip(frames)
    height, width = clip.shape[-2:]
    scale = size / min(height, width)
    resized = (max(size, round(height * scale)), max(size, round(width * scale)))
    if resized != (height, width):
        clip = F.interpolate(clip, size=resized, mode="bilinear", align_corners=False)
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    return _normalise(clip[..., top:top + size, left:left + size])
