"""The synthetic action classes: each is a motion pattern of one object over time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# A motion maps (time in [0, 1], frame size, the video's random generator draws) to the
# object's centre (x, y), rotation angle (radians) and scale factor.
Pose = tuple[tuple[float, float], float, float]
Motion = Callable[[float, dict[str, float]], Pose]


def draw_motion_parameters(rng: np.random.Generator, height: int, width: int) -> dict[str, float]:
    """Speed, extent and start of a motion, drawn per video independently of its class."""
    return {
        "height": height, "width": width,
        "cx": width * rng.uniform(0.4, 0.6), "cy": height * rng.uniform(0.4, 0.6),
        "travel": min(height, width) * rng.uniform(0.35, 0.6),
        "angle0": rng.uniform(0, 2 * np.pi), "turn": rng.uniform(0.8, 1.6) * np.pi,
        "zoom": rng.uniform(1.8, 2.6), "cycles": rng.uniform(1.5, 3.0),
        "axis": rng.uniform(0, np.pi),
    }


def _translate(dx: float, dy: float) -> Motion:
    def pose(t: float, p: dict[str, float]) -> Pose:
        offset = (t - 0.5) * p["travel"]
        return (p["cx"] + dx * offset, p["cy"] + dy * offset), p["angle0"], 1.0

    return pose


def _rotate(direction: float) -> Motion:
    def pose(t: float, p: dict[str, float]) -> Pose:
        return (p["cx"], p["cy"]), p["angle0"] + direction * p["turn"] * t, 1.0

    return pose


def _zoom(growing: bool) -> Motion:
    def pose(t: float, p: dict[str, float]) -> Pose:
        low, high = 1.0 / np.sqrt(p["zoom"]), np.sqrt(p["zoom"])
        fraction = t if growing else 1.0 - t
        return (p["cx"], p["cy"]), p["angle0"], low * (high / low) ** fraction

    return pose


def _oscillate(t: float, p: dict[str, float]) -> Pose:
    offset = 0.35 * p["travel"] * np.sin(2 * np.pi * p["cycles"] * t)
    centre = (p["cx"] + offset * np.cos(p["axis"]), p["cy"] + offset * np.sin(p["axis"]))
    return centre, p["angle0"], 1.0


def _bounce(t: float, p: dict[str, float]) -> Pose:
    height = 0.6 * p["travel"] * abs(np.sin(np.pi * p["cycles"] * t))
    return (p["cx"], p["cy"] + 0.3 * p["travel"] - height), p["angle0"], 1.0


MOTIONS: dict[str, Motion] = {
    "TranslateRight": _translate(1, 0),
    "TranslateLeft": _translate(-1, 0),
    "TranslateUp": _translate(0, -1),
    "TranslateDown": _translate(0, 1),
    "RotateClockwise": _rotate(1),
    "RotateCounterClockwise": _rotate(-1),
    "Grow": _zoom(True),
    "Shrink": _zoom(False),
    "Oscillate": _oscillate,
    "Bounce": _bounce,
}
