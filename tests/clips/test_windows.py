from collections import Counter, defaultdict

import numpy as np
import pytest

from stages.clips.windows import (
    anchor_and_positive_starts,
    centre_window,
    random_anchor_start,
    random_start,
    spaced_windows,
    window,
    window_span,
)


@pytest.mark.parametrize("anchor", ["random", "start"])
@pytest.mark.parametrize(("frames", "length", "stride"), [(40, 8, 1), (100, 16, 1), (90, 8, 3),
                                                          (32, 16, 1)])
def test_positive_never_overlaps_the_anchor(anchor, frames, length, stride):
    rng = np.random.default_rng(0)
    span = window_span(length, stride)
    seen_positive = set()
    for _ in range(300):
        a, p = anchor_and_positive_starts(frames, length, stride, anchor, rng)
        assert abs(a - p) >= span
        assert 0 <= a and a + span <= frames and 0 <= p and p + span <= frames
        if anchor == "start":
            assert a == 0
        seen_positive.add(p)
    assert len(seen_positive) > 1 or frames == 2 * span


def test_short_videos_are_loop_padded():
    rng = np.random.default_rng(0)
    a, p = anchor_and_positive_starts(10, 8, 1, "random", rng)
    assert (a, p) == (0, 8)
    frames = window(p, 8, 1, 10)
    assert frames.tolist() == [8, 9, 0, 1, 2, 3, 4, 5]


def test_centre_and_spaced_windows():
    assert centre_window(20, 4, 1).tolist() == [8, 9, 10, 11]
    assert centre_window(3, 4, 1).tolist() == [0, 1, 2, 0]
    spaced = spaced_windows(100, 16, 1, 10)
    assert spaced.shape == (10, 16)
    assert spaced[0, 0] == 0 and spaced[-1, -1] == 99
    assert (np.diff(spaced[:, 0]) > 0).all()


def test_random_start_is_uniform_over_every_start_that_fits():
    """A window of span 8 in 10 frames may start at 0, 1 or 2, each about a third of the time;
    one that fits exactly, or not at all, starts at 0 (then it is loop-padded)."""
    rng = np.random.default_rng(3)
    starts = np.array([random_start(10, 8, 1, rng) for _ in range(600)])
    assert np.bincount(starts).tolist() == pytest.approx([200, 200, 200], abs=45)
    strided = {random_start(20, 4, 3, rng) for _ in range(400)}  # span 10: starts 0..10
    assert strided == set(range(11))
    assert {random_start(16, 16, 1, rng) for _ in range(50)} == {0}
    assert {random_start(5, 8, 1, rng) for _ in range(50)} == {0}


def test_spaced_windows_of_a_video_one_span_long_all_start_at_zero():
    """With no room to spread, every window is the whole video (or its loop-padding)."""
    assert spaced_windows(16, 16, 1, 3).tolist() == [list(range(16))] * 3
    assert spaced_windows(5, 4, 2, 2).tolist() == [[0, 2, 4, 1]] * 2


@pytest.mark.parametrize("anchor", ["random", "start"])
def test_positive_is_uniform_over_every_start_disjoint_from_the_anchor(anchor):
    """12 frames, windows of 3: starts 0..9. Whatever the anchor, the positive takes every start
    at least 3 away from it (on both sides), each about equally often."""
    rng = np.random.default_rng(5)
    by_anchor: dict[int, Counter] = defaultdict(Counter)
    for _ in range(1500):
        a, p = anchor_and_positive_starts(12, 3, 1, anchor, rng)
        by_anchor[a][p] += 1
    assert all(0 <= a <= 9 for a in by_anchor) and (anchor == "random") == (len(by_anchor) > 1)
    for a, counts in by_anchor.items():
        assert set(counts) == {p for p in range(10) if abs(p - a) >= 3}, a
        mean = sum(counts.values()) / len(counts)
        assert 0.5 * mean < min(counts.values()) and max(counts.values()) < 1.5 * mean, a


@pytest.mark.parametrize(("frames", "span"), [(40, 8), (20, 8), (16, 8), (12, 3), (21, 10),
                                               (10, 8)])
def test_random_anchors_take_every_start_that_leaves_room_for_a_positive(frames, span):
    """The anchor may start wherever a disjoint positive still fits before or after it, each
    start about equally often: the last window of a long video is an anchor too. A video
    shorter than two spans keeps its anchor at 0 (the positive is the loop-padded one)."""
    rng = np.random.default_rng(7)
    counts = Counter(random_anchor_start(frames, span, rng) for _ in range(3000))
    usable = max(frames, 2 * span)
    valid = {s for s in range(frames - span + 1) if s >= span or s <= usable - 2 * span}
    assert set(counts) == valid
    mean = 3000 / len(valid)
    assert 0.7 * mean < min(counts.values()) and max(counts.values()) < 1.3 * mean
    if frames >= 3 * span:
        assert frames - span in counts  # the last start
