"""The synthetic action classes: each is a motion pattern of one object over time.

Every class looks the same in a mirror (a slide to the left mirrored is a slide to the right,
and the direction of a slide, a spin or an orbit is drawn per video), so horizontal flipping,
an augmentation every video method uses, never turns one class into another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A pose: the object's centre (x, y) in pixels, its rotation (radians) and scale factor.
Pose = tuple[tuple[float, float], float, float]


@dataclass(frozen=True)
class MotionParameters:
    """How one video moves: shared by all of its shots (speed, direction) or drawn per shot
    (start position and angle). Lengths are in pixels, times in seconds."""

    side: float  # the frame's short side
    cx: float  # where the shot's motion is centred
    cy: float
    angle0: float
    speed: float  # multiplies every class's base speed, drawn per video
    direction: float  # +1 or -1, drawn per video (slide, spin, orbit)
    phase: float  # start phase of periodic motions


Motion = Callable[[float, MotionParameters], Pose]

# Base rates at speed 1, in short sides (or radians, or log-scale) per second: about 1.5 pixels
# a frame at 25 fps for a 128-pixel frame, enough to show in a clip of a few frames.
SLIDE_RATE, SPIN_RATE, ZOOM_RATE = 0.3, 2.0, 0.8
SWING_AMPLITUDE, SWING_HZ, ORBIT_RADIUS, ORBIT_HZ = 0.1, 1.2, 0.12, 0.8


def _slide(dx: float, dy: float) -> Motion:
    def pose(t: float, p: MotionParameters) -> Pose:
        step = p.speed * SLIDE_RATE * p.side * t
        sign = p.direction if dy == 0 else 1.0
        return (p.cx + sign * dx * step, p.cy + dy * step), p.angle0, 1.0

    return pose


def _spin(t: float, p: MotionParameters) -> Pose:
    return (p.cx, p.cy), p.angle0 + p.direction * p.speed * SPIN_RATE * t, 1.0


def _zoom(sign: float) -> Motion:
    def pose(t: float, p: MotionParameters) -> Pose:
        return (p.cx, p.cy), p.angle0, float(np.exp(sign * (p.speed * ZOOM_RATE * t - 0.6)))

    return pose


def _swing(dx: float, dy: float) -> Motion:
    def pose(t: float, p: MotionParameters) -> Pose:
        offset = SWING_AMPLITUDE * p.side * np.sin(2 * np.pi * SWING_HZ * p.speed * t + p.phase)
        return (p.cx + dx * offset, p.cy + dy * offset), p.angle0, 1.0

    return pose


def _orbit(t: float, p: MotionParameters) -> Pose:
    turn = p.direction * 2 * np.pi * ORBIT_HZ * p.speed * t + p.phase
    radius = ORBIT_RADIUS * p.side
    return (p.cx + radius * np.cos(turn), p.cy + radius * np.sin(turn)), p.angle0, 1.0


def _pulse(t: float, p: MotionParameters) -> Pose:
    scale = float(np.exp(0.35 * np.sin(2 * np.pi * SWING_HZ * p.speed * t + p.phase)))
    return (p.cx, p.cy), p.angle0, scale


MOTIONS: dict[str, Motion] = {
    "Slide": _slide(1, 0),
    "Rise": _slide(0, -1),
    "Fall": _slide(0, 1),
    "Spin": _spin,
    "Grow": _zoom(1),
    "Shrink": _zoom(-1),
    "Swing": _swing(1, 0),
    "Bob": _swing(0, 1),
    "Orbit": _orbit,
    "Pulse": _pulse,
}


def draw_video_motion(rng: np.random.Generator) -> tuple[float, float]:
    """(speed, direction) of one video, independent of its class."""
    return float(rng.uniform(0.8, 1.25)), float(rng.choice([-1.0, 1.0]))


def draw_shot_motion(rng: np.random.Generator, height: int, width: int, speed: float,
                     direction: float, seconds: float, motion: Motion) -> MotionParameters:
    """Where one shot's motion happens: placed so the object stays near the frame's middle."""
    side = float(min(height, width))
    base = MotionParameters(side, 0.0, 0.0, float(rng.uniform(0, 2 * np.pi)), speed,
                            direction, float(rng.uniform(0, 2 * np.pi)))
    # Centre the path of the shot (start and end poses) on a point near the frame's centre.
    (x0, y0), _, _ = motion(0.0, base)
    (x1, y1), _, _ = motion(seconds, base)
    target_x = width * rng.uniform(0.42, 0.58)
    target_y = height * rng.uniform(0.42, 0.58)
    return MotionParameters(side, target_x - (x0 + x1) / 2, target_y - (y0 + y1) / 2,
                            base.angle0, speed, direction, base.phase)
