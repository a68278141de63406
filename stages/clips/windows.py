"""Which frames a clip takes: training windows (anchor, non-overlapping positive) and
evaluation windows (centre, evenly spaced). All return (T,) int64 frame indices.

A window of T frames at stride s spans (T - 1) * s + 1 frames. Videos too short for a window
are loop-padded: indices wrap around the video, so no sampler ever fails on a short video.
Pretraining skips videos shorter than two windows by default (`pretrain.short_videos`), since
there a loop-padded same-video positive shares frames with its anchor.
"""

from __future__ import annotations

import numpy as np


def window_span(length: int, stride: int) -> int:
    """Frames covered by a window of `length` frames taken every `stride` frames."""
    return (length - 1) * stride + 1


def window(start: int, length: int, stride: int, num_frames: int) -> np.ndarray:
    """Frame indices start, start + stride, ... wrapped into 0..num_frames-1 (loop padding)."""
    return (start + np.arange(length, dtype=np.int64) * stride) % num_frames


def anchor_and_positive_starts(num_frames: int, length: int, stride: int, anchor: str,
                               rng: np.random.Generator) -> tuple[int, int]:
    """Starts of the anchor window and of a same-video positive that does not overlap it.

    `anchor="start"` puts the anchor at frame 0 (the official code); `"random"` draws it
    uniformly among the starts that leave room for a disjoint positive before or after it:
    every start of the video once it holds three spans, so the last window's frames appear in
    anchors too. The positive is drawn uniformly among starts whose window is disjoint from
    the anchor's. A video shorter than two spans is treated as loop-padded to two spans: the
    windows are disjoint on the padded timeline, but their wrapped frame indices overlap.
    """
    span = window_span(length, stride)
    usable = max(num_frames, 2 * span)
    anchor_start = 0 if anchor == "start" else random_anchor_start(num_frames, span, rng)
    # Disjoint starts: [0, anchor_start - span] and [anchor_start + span, usable - span].
    before = max(anchor_start - span + 1, 0)
    after = max(usable - span - (anchor_start + span) + 1, 0)
    pick = int(rng.integers(0, before + after))
    positive_start = pick if pick < before else anchor_start + span + (pick - before)
    return anchor_start, positive_start


def random_anchor_start(num_frames: int, span: int, rng: np.random.Generator) -> int:
    """A uniform draw among the starts of a window of `span` frames that leave a disjoint
    window before (start >= span) or after (start <= usable - 2 span) them, where a video
    shorter than two spans is loop-padded to two (usable) and its anchor starts at 0."""
    usable = max(num_frames, 2 * span)
    last_early = usable - 2 * span  # the starts 0..last_early have room after them
    first_late = max(span, last_early + 1)  # first_late..num_frames - span room before them
    early, late = last_early + 1, max(num_frames - span - first_late + 1, 0)
    pick = int(rng.integers(0, early + late))
    return pick if pick < early else first_late + (pick - early)


def random_start(num_frames: int, length: int, stride: int, rng: np.random.Generator) -> int:
    """A uniformly random start for one window (a cluster-mate's positive)."""
    return int(rng.integers(0, max(num_frames - window_span(length, stride), 0) + 1))


def centre_window(num_frames: int, length: int, stride: int) -> np.ndarray:
    """The window in the middle of the video (loop-padded when the video is short)."""
    start = max((num_frames - window_span(length, stride)) // 2, 0)
    return window(start, length, stride, num_frames)


def spaced_windows(num_frames: int, length: int, stride: int, count: int) -> np.ndarray:
    """(count, T) windows whose centres are evenly spaced over the video."""
    span = window_span(length, stride)
    starts = np.linspace(0, max(num_frames - span, 0), count).round().astype(np.int64)
    return np.stack([window(int(s), length, stride, num_frames) for s in starts])
