"""Evaluation clips: which window and which crop each item shows, and in what order the items
run, on a stand-in store whose pixels spell their column and frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from stages.clips.fixed_windows import EvaluationClips

HEIGHT, WIDTH, SIZE = 8, 14, 8
FRAME_COUNTS = [20, 9]


class PositionStore:
    """Stand-in for ClipStore: red = 10 x column, blue = 10 x frame + 5 x video."""

    def __init__(self) -> None:
        self.table = SimpleNamespace(columns={"height": np.full(2, HEIGHT),
                                              "width": np.full(2, WIDTH)})

    def frame_count(self, video: int) -> int:
        return FRAME_COUNTS[video]

    def rgb(self, video: int, frames: np.ndarray) -> np.ndarray:
        out = np.zeros((len(frames), HEIGHT, WIDTH, 3), np.uint8)
        out[..., 0] = 10 * np.arange(WIDTH)
        out[..., 2] = (10 * np.asarray(frames) + 5 * video)[:, None, None]
        return out


def shown(clip) -> tuple[int, list[int], int]:
    """(first column, the frame of each time step, video) a (3, T, S, S) view shows."""
    levels = clip.float().round().to(int)
    blue = levels[2, :, 0, 0].tolist()
    return int(levels[0, 0, 0, 0]) // 10, [b // 10 for b in blue], blue[0] % 10 // 5


def test_items_run_video_by_video_windows_slowest_then_crops():
    """2 windows x 3 crops of videos [1, 0]: windows evenly spaced over each video (first and
    last start), crops at the start, centre and end of the long side."""
    data = EvaluationClips(PositionStore(), np.array([1, 0]), clip_length=4, stride=2,
                           crop_size=SIZE, windows=2, crops=3)
    assert len(data) == 12 and data.clips_per_video == 6
    # Span 7: video 1 (9 frames) starts windows at 0 and 2, video 0 (20 frames) at 0 and 13.
    windows = {1: ([0, 2, 4, 6], [2, 4, 6, 8]), 0: ([0, 2, 4, 6], [13, 15, 17, 19])}
    for item in range(12):
        clip, position = data[item]
        video = (1, 0)[item // 6]
        assert position == item // 6 and clip.shape == (3, 4, SIZE, SIZE)
        column, frames, seen_video = shown(clip)
        assert seen_video == video, item
        assert frames == windows[video][item % 6 // 3], item
        assert column == (0, 3, 6)[item % 3], item


def test_one_window_one_crop_is_the_centre_of_the_video_and_frame():
    data = EvaluationClips(PositionStore(), np.array([0, 1]), clip_length=4, stride=2,
                           crop_size=SIZE)
    assert len(data) == 2
    assert shown(data[0][0]) == (3, [6, 8, 10, 12], 0)  # (20 - 7) // 2 = 6
    assert shown(data[1][0]) == (3, [1, 3, 5, 7], 1)  # (9 - 7) // 2 = 1
    assert data[1][1] == 1
    assert data.frames_of(0, 0).tolist() == [6, 8, 10, 12]
