"""Spatial augmentation drawn once per clip and applied to all its frames in one tensor op.

Order as the official SLIC code: random resized crop, horizontal flip, colour jitter (random
order), grayscale, Gaussian blur; ImageNet normalisation follows on the device
(`normalise_clips`), so loader workers ship uint8 clips, a quarter of float32's bytes. A flow
view (one stored flow channel, replicated to three) takes the same crop and flip as an RGB
clip; by default (`consistent`) it stays a valid flow field: a flip negates u and the colour
operations, which would shift the zero of motion, leave it alone. `official` treats it as a
gray image, as the official code does.

The frames of a clip are processed together, in uint8: OpenCV resizes and blurs them stacked
as channels of one image and applies the colour operations to them stacked as one tall image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from stages.runtime.choices import FLOW_AUGMENT_MODES

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
    flow_augment: str = "consistent"  # how a flow view is augmented: FLOW_AUGMENT_MODES
    colour_on: str = "worker"  # worker, or device: jitter, grayscale and blur on the device

    def __post_init__(self) -> None:
        if self.flow_augment not in FLOW_AUGMENT_MODES:
            raise ValueError(f"flow_augment is {self.flow_augment!r}; use one of "
                             f"{', '.join(FLOW_AUGMENT_MODES)}")


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


def resize_clip(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of every frame. (T, h, w[, C]) uint8 -> (T, height, width[, C]).

    One OpenCV call per frame: measured 4x faster than one call on the frames stacked as
    channels, which takes OpenCV's generic many-channel path.
    """
    resized = np.empty((len(frames), height, width, *frames.shape[3:]), np.uint8)
    for frame, target in zip(frames, resized):
        cv2.resize(frame, (width, height), dst=target, interpolation=cv2.INTER_LINEAR)
    return resized


# Colour operations work on the clip as one tall uint8 image (T * S, S, 3), as PIL does on
# frames in the official code, with OpenCV's saturating arithmetic doing the clipping.
def _gray3(tall: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(tall, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def _brightness(tall: np.ndarray, factor: float, frames: int) -> np.ndarray:
    return cv2.convertScaleAbs(tall, alpha=factor)


def _contrast(tall: np.ndarray, factor: float, frames: int) -> np.ndarray:
    means = cv2.cvtColor(tall, cv2.COLOR_RGB2GRAY).reshape(frames, -1).mean(axis=1)
    per_frame = tall.reshape(frames, -1, tall.shape[1], 3)
    return np.concatenate([cv2.addWeighted(frame, factor, frame, 0.0, (1 - factor) * mean)
                           for frame, mean in zip(per_frame, means)])


def _saturation(tall: np.ndarray, factor: float, frames: int) -> np.ndarray:
    return cv2.addWeighted(tall, factor, _gray3(tall), 1 - factor, 0.0)


def _hue(tall: np.ndarray, shift: float, frames: int) -> np.ndarray:
    hsv = cv2.cvtColor(tall, cv2.COLOR_RGB2HSV_FULL)  # hue 0..255 for the full circle
    hsv[..., 0] += np.uint8(round(shift * 256) % 256)  # uint8 wraps around the circle
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)


def _channels_first(clip: np.ndarray) -> torch.Tensor:
    """(T, S, S, 3) uint8 -> (3, T, S, S) uint8, a view that keeps the frames' channels-last
    memory: the layout the model takes on the GPU, which `clip_collate` batches without a
    copy."""
    return torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2)


def normalise_clips(clips: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of uint8 clips, on whatever device they sit.

    (..., 3, T, S, S) uint8 -> the same shape in float32, memory format kept.
    """
    mean, std = _levels_of_normalisation(clips.device)
    return clips.float().sub_(mean).div_(std)


@functools.cache
def _levels_of_normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std in uint8 levels, (3, 1, 1, 1) float32 on `device` (copied there
    once, not every batch)."""
    return (IMAGENET_MEAN * 255).to(device), (IMAGENET_STD * 255).to(device)


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames[..., None], 3, axis=-1) if frames.ndim == 3 else frames


def negate_flow(stored: np.ndarray) -> np.ndarray:
    """Stored flow of the opposite sign. uint8 -> uint8, same shape.

    `quantise_flow` maps 0 to 127.5, so 255 - q is exactly the negation of what q stands for
    (`dequantise_flow(255 - q) == -dequantise_flow(q)`), and 0..255 maps onto itself.
    """
    return 255 - stored


# flow_contrast "clip": the level the fastest 1% of a flow view's pixels are stretched to (of
# the 127.5 levels on either side of zero motion), and the most it may be amplified, so that a
# nearly still clip does not become amplified estimation noise.
STRETCH_TARGET_LEVELS = 96.0
STRETCH_MAX_GAIN = 16.0


def _zero_motion(channel: str) -> float | np.ndarray:
    """The stored level of no motion: 127.5 for u and v, 0 for the magnitude; per channel
    (u, v, magnitude) for uvm."""
    if channel == "uvm":
        return np.array([127.5, 127.5, 0.0], dtype=np.float32)
    return 0.0 if channel == "magnitude" else 127.5


def stretch_gain(stored: np.ndarray, channel: str) -> float:
    """The gain `stretch_flow_view` gives a flow view: its 99th percentile of motion (levels
    from zero motion) brought to STRETCH_TARGET_LEVELS, within 1..STRETCH_MAX_GAIN. For uvm
    the signed channels u and v set it."""
    signed = stored[..., :2] if channel == "uvm" else stored
    zero = 127.5 if channel == "uvm" else _zero_motion(channel)
    spread = float(np.percentile(np.abs(signed.astype(np.float32) - zero), 99))
    return min(STRETCH_MAX_GAIN, max(1.0, STRETCH_TARGET_LEVELS / max(spread, 1e-6)))


def stretch_flow_view(stored: np.ndarray, channel: str) -> np.ndarray:
    """Stretch a flow view's contrast around zero motion, by one gain for the whole clip.

    `stored` is (T, H, W) uint8 for channel u, v or magnitude, or (T, H, W, 3) for uvm (u, v,
    magnitude). The gain (`stretch_gain`) makes slow motion show as much as fast motion; the
    direction and the shape of what moves stay. Same shape and dtype out.
    """
    zero = _zero_motion(channel)
    stretched = (stored.astype(np.float32) - zero) * stretch_gain(stored, channel) + zero
    return np.clip(np.rint(stretched), 0, 255).astype(np.uint8)


def colour_draw(augmentation: ClipAugmentation, flow: str | None,
                flow_augment: str) -> ClipAugmentation:
    """The draw a clip's colour operations follow: a consistent flow view takes none of them
    (they would shift its zero of motion); RGB and an `official` flow view take them all."""
    if flow is not None and flow_augment == "consistent":
        return replace(augmentation, jitter=(), grayscale=False, blur=False)
    return augmentation


def augment_clip(frames: np.ndarray, augmentation: ClipAugmentation, size: int, *,
                 flow: str | None = None, flow_augment: str = "consistent",
                 colour: bool = True) -> torch.Tensor:
    """Apply one augmentation draw to a clip. (T, H, W[, 3]) uint8 -> (3, T, S, S) uint8.

    Gray input is replicated to three channels first. `flow` names what a flow view shows (u,
    v, magnitude, or uvm: (T, H, W, 3) with u, v and magnitude as its channels): with
    `flow_augment="consistent"` it takes only the crop and the flip, and a flip negates u
    (mirrored motion runs the other way; v and the magnitude keep their values). With
    `"official"`, or `flow=None`, the input takes every operation, as RGB does. With
    `colour=False` only the crop and flip happen here: the colour operations follow on the
    device (`device_colour.apply_colour` of the same draw).
    """
    top, left, h, w = augmentation.box
    clip = resize_clip(frames[:, top:top + h, left:left + w], size, size)
    augmentation = colour_draw(augmentation, flow, flow_augment)
    if not colour:
        augmentation = replace(augmentation, jitter=(), grayscale=False, blur=False)
    if flow is not None and flow_augment == "consistent":
        if augmentation.flip and flow == "u":
            clip = negate_flow(clip)
        elif augmentation.flip and flow == "uvm":
            clip = np.concatenate([negate_flow(clip[..., :1]), clip[..., 1:]], axis=-1)
    clip = _as_rgb(clip)
    count = clip.shape[0]
    tall = clip.reshape(count * size, size, 3)
    if augmentation.flip:
        tall = cv2.flip(tall, 1)  # mirrors every row, so every frame
    for operation, factor in augmentation.jitter:
        tall = _JITTER_OPS[operation](tall, factor, count)
    if augmentation.grayscale:
        tall = _gray3(tall)
    clip = tall.reshape(count, size, size, 3)
    if augmentation.blur:
        clip = blur_clip(clip)
    return _channels_first(clip)


# OpenCV filters an image of at most 128 channels (CV_CN_MAX is 512, but GaussianBlur's
# separable filter stops at 128): 42 RGB frames stacked as channels is the most in one call.
BLUR_FRAMES_PER_CALL = 42


def blur_clip(clip: np.ndarray) -> np.ndarray:
    """Gaussian blur of every frame of a (T, S, S, 3) uint8 clip, frames stacked as channels
    in groups OpenCV accepts, so clips of any length work."""
    count, size = clip.shape[0], clip.shape[1]
    parts = []
    for first in range(0, count, BLUR_FRAMES_PER_CALL):
        group = clip[first:first + BLUR_FRAMES_PER_CALL]
        stacked = np.ascontiguousarray(np.moveaxis(group, 0, 2).reshape(size, size, -1))
        blurred = cv2.GaussianBlur(stacked, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
        parts.append(np.moveaxis(blurred.reshape(size, size, len(group), 3), 2, 0))
    return np.concatenate(parts)


def crop_boxes(height: int, width: int, size: int, count: int) -> list[tuple[int, int, bool]]:
    """Test-time views (top, left, flip) of S x S crops from a frame of H x W.

    1: the centre; 3: start, centre and end of the long side; 10: four corners and centre,
    each also flipped (the frame is expected resized so that its short side exceeds S).
    """
    centre = ((height - size) // 2, (width - size) // 2)
    if count == 1:
        return [(*centre, False)]
    if count == 3:
        if width >= height:
            return [(centre[0], left, False) for left in (0, centre[1], width - size)]
        return [(top, centre[1], False) for top in (0, centre[0], height - size)]
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size),
               centre]
    return [(top, left, flip) for flip in (False, True) for top, left in corners]


def evaluation_view(frames: np.ndarray, size: int, crops: int = 1, view: int = 0
                   ) -> torch.Tensor:
    """View `view` of `crops` test-time views: resize the short side to S (to 8/7 S for 10
    crops, so the corners differ), crop S x S, maybe flip.

    (T, H, W[, 3]) uint8 -> (3, T, S, S) uint8 (normalised later, on the device).
    """
    height, width = frames.shape[1:3]
    short = size if crops < 10 else round(size * 8 / 7)
    scale = short / min(height, width)
    resized = (max(short, round(height * scale)), max(short, round(width * scale)))
    if resized != (height, width):
        frames = resize_clip(frames, *resized)
    top, left, flip = crop_boxes(*resized, size, crops)[view]
    clip = _as_rgb(frames[:, top:top + size, left:left + size])
    count = clip.shape[0]
    tall = np.ascontiguousarray(clip).reshape(count * size, size, 3)
    if flip:
        tall = cv2.flip(tall, 1)
    return _channels_first(tall.reshape(count, size, size, 3))


def centre_crop_clip(frames: np.ndarray, size: int) -> torch.Tensor:
    """Evaluation view: resize the short side to S, centre crop S x S.

    (T, H, W[, 3]) uint8 -> (3, T, S, S) uint8 (normalised later, on the device).
    """
    return evaluation_view(frames, size, 1, 0)
