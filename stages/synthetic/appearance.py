"""Random appearance of synthetic videos: a textured object kept for the whole video (its
"actor") and a background texture drawn anew for each shot.

Each class has a characteristic object shape (`SHAPES[class]`, as real actions come with
their objects), which a video takes with a set probability and otherwise draws at random;
texture, size and backgrounds come from the video's own random generator alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("triangle", "square", "pentagon", "star", "cross", "arrow", "ell", "rhombus")


def _polygon(shape: str) -> np.ndarray:
    """Vertices (K, 2) of a shape inside the unit disc, centred on the origin."""
    if shape in ("triangle", "square", "pentagon", "rhombus"):
        sides = {"triangle": 3, "square": 4, "pentagon": 5, "rhombus": 4}[shape]
        angles = np.arange(sides) * 2 * np.pi / sides + np.pi / 4 * (shape == "square")
        points = np.stack([np.cos(angles), np.sin(angles)], 1)
        return points * ([1.0, 0.6] if shape == "rhombus" else 1.0)
    if shape == "star":
        angles = np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)
    if shape == "cross":
        a, b = 1.0, 0.33
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a],
                         [-b, b], [-a, b], [-a, -b], [-b, -b]])
    if shape == "arrow":
        return np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.7], [1, 0], [0.2, 0.7], [0.2, 0.3],
                         [-1, 0.3]])
    return np.array([[-0.8, -1], [-0.2, -1], [-0.2, 0.4], [0.8, 0.4], [0.8, 1], [-0.8, 1]])


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random (H, W, 3) uint8 texture: blotches, stripes, checks or a noisy gradient."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    colours = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    if kind == 0:
        noise = rng.normal(size=(height // 8 + 1, width // 8 + 1)).astype(np.float32)
        weight = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        weight = (weight - weight.min()) / (np.ptp(weight) + 1e-6)
    elif kind == 1:
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 30)
        weight = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    elif kind == 2:
        cell = rng.integers(8, 24)
        weight = ((xx // cell + yy // cell) % 2).astype(np.float32)
    else:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        weight = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
        weight = weight + rng.normal(scale=0.08, size=weight.shape).astype(np.float32)
    image = colours[0] + np.clip(weight, 0, 1)[..., None] * (colours[1] - colours[0])
    return np.clip(image, 0, 255).astype(np.uint8)


OBJECT_TEXTURE_SIZE = 64  # the object's texture is drawn once at this size and warped


@dataclass
class Appearance:
    """Everything about one shot's look; `draw` puts the object on a copy of the background.

    The object is a polygon filled with its own texture, which turns and scales with it, so
    its motion shows inside it and not only at its outline.
    """

    background: np.ndarray  # (H, W, 3) uint8
    polygon: np.ndarray  # (K, 2) unit-disc vertices
    texture: np.ndarray  # (OBJECT_TEXTURE_SIZE, OBJECT_TEXTURE_SIZE, 3) uint8
    radius: float  # pixels

    def draw(self, centre: tuple[float, float], angle: float, scale: float) -> np.ndarray:
        """The (H, W, 3) uint8 frame with the object at this pose."""
        height, width = self.background.shape[:2]
        radius = self.radius * scale
        cos, sin = np.cos(angle) * radius, np.sin(angle) * radius
        # Unit-disc coordinates -> frame pixels: rotate, scale, then move to the centre.
        to_frame = np.array([[cos, -sin, centre[0]], [sin, cos, centre[1]]])
        half = OBJECT_TEXTURE_SIZE / 2
        from_texture = to_frame @ np.array([[1 / half, 0, -1], [0, 1 / half, -1], [0, 0, 1]])
        warped = cv2.warpAffine(self.texture, from_texture, (width, height),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        points = self.polygon @ to_frame[:, :2].T + to_frame[:, 2]
        mask = np.zeros((height, width), np.uint8)
        shift = 4  # sub-pixel precision of OpenCV's drawing: coordinates in 1/16 pixel
        cv2.fillPoly(mask, [np.rint(points * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA,
                     shift)
        return cv2.blendLinear(warped, self.background, mask.astype(np.float32) / 255,
                               1 - mask.astype(np.float32) / 255)


@dataclass(frozen=True)
class VideoObject:
    """The object of one video: shape, texture and size, the same in every shot."""

    polygon: np.ndarray  # (K, 2) unit-disc vertices
    texture: np.ndarray  # (OBJECT_TEXTURE_SIZE, OBJECT_TEXTURE_SIZE, 3) uint8
    radius: float  # pixels


def video_object(rng: np.random.Generator, height: int, width: int, class_index: int,
                 class_shape_probability: float) -> VideoObject:
    """The class's shape with probability `class_shape_probability`, else a random one; a
    random texture and size."""
    own_shape = rng.random() < class_shape_probability
    shape = SHAPES[class_index % len(SHAPES)] if own_shape else SHAPES[rng.integers(len(SHAPES))]
    return VideoObject(
        polygon=_polygon(shape),
        texture=_background(rng, OBJECT_TEXTURE_SIZE, OBJECT_TEXTURE_SIZE),
        radius=rng.uniform(0.15, 0.25) * min(height, width),
    )


def shot_appearance(rng: np.random.Generator, subject: VideoObject, height: int,
                    width: int) -> Appearance:
    """One shot's look: the video's object on a new random background."""
    return Appearance(background=_background(rng, height, width), polygon=subject.polygon,
                      texture=subject.texture, radius=subject.radius)
