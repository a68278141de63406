import numpy as np
import pytest

from stages.clips.windows import (
    anchor_and_positive_starts,
    centre_window,
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
