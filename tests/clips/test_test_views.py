"""The 1-, 3- and 10-crop test views: each crop is where the protocol puts it, checked on
frames whose pixels spell their own row, column and frame index."""

import numpy as np
import pytest

from stages.clips.augment import crop_boxes, evaluation_view

SIZE = 8


def position_frames(height: int, width: int, count: int = 2) -> np.ndarray:
    """(T, H, W, 3) uint8: red = 10 x column, green = 20 x row, blue = 50 x frame."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 0] = 10 * np.arange(width)[None, None, :]
    frames[..., 1] = 20 * np.arange(height)[None, :, None]
    frames[..., 2] = 50 * np.arange(count)[:, None, None]
    return frames


def pixels(view) -> np.ndarray:
    """A normalised (3, T, S, S) view back to (T, S, S, 3) uint8 levels."""
    levels = view.float().round().numpy()
    return np.moveaxis(levels, 0, -1).astype(np.int64)


def test_one_crop_is_the_centre():
    assert crop_boxes(8, 14, SIZE, 1) == [(0, 3, False)]
    assert crop_boxes(13, 8, SIZE, 1) == [(2, 0, False)]
    frames = position_frames(8, 14)
    assert np.array_equal(pixels(evaluation_view(frames, SIZE, 1, 0)), frames[:, :, 3:11])


def test_three_crops_are_start_centre_and_end_of_the_long_side():
    assert crop_boxes(8, 20, SIZE, 3) == [(0, 0, False), (0, 6, False), (0, 12, False)]
    assert crop_boxes(21, 8, SIZE, 3) == [(0, 0, False), (6, 0, False), (13, 0, False)]
    wide = position_frames(8, 20)
    for view, left in enumerate((0, 6, 12)):
        crop = pixels(evaluation_view(wide, SIZE, 3, view))
        assert np.array_equal(crop, wide[:, :, left:left + SIZE]), view
    tall = position_frames(21, 8)
    for view, top in enumerate((0, 6, 13)):
        crop = pixels(evaluation_view(tall, SIZE, 3, view))
        assert np.array_equal(crop, tall[:, top:top + SIZE]), view


def test_ten_crops_are_four_corners_and_centre_then_the_same_mirrored():
    # The short side of a 10-crop view is 8/7 S = 9 px for S = 8: a 9 x 12 frame is used as
    # it is, and the corners are (0, 0), (0, 4), (1, 0), (1, 4), the centre (0, 2).
    places = [(0, 0), (0, 4), (1, 0), (1, 4), (0, 2)]
    assert crop_boxes(9, 12, SIZE, 10) == ([(*p, False) for p in places]
                                           + [(*p, True) for p in places])
    frames = position_frames(9, 12)
    for view in range(10):
        top, left = places[view % 5]
        expected = frames[:, top:top + SIZE, left:left + SIZE]
        if view >= 5:
            expected = expected[:, :, ::-1]
        crop = pixels(evaluation_view(frames, SIZE, 10, view))
        assert np.array_equal(crop, expected), view


@pytest.mark.parametrize("crops", [1, 3, 10])
def test_every_view_keeps_the_frames_in_order(crops):
    frames = position_frames(12, 15, count=4)
    for view in range(crops):
        blue = pixels(evaluation_view(frames, SIZE, crops, view))[..., 2]
        assert [int(np.median(b)) for b in blue] == [0, 50, 100, 150]


def test_a_view_is_the_centre_crop_unless_told_otherwise():
    frames = position_frames(8, 14)
    assert np.array_equal(pixels(evaluation_view(frames, SIZE)), frames[:, :, 3:11])


def test_three_crops_of_a_square_frame_run_along_its_width():
    """A square frame has no long side: its three crops run left to right, as a wide one's."""
    assert crop_boxes(12, 12, SIZE, 3) == [(2, 0, False), (2, 2, False), (2, 4, False)]


def test_a_larger_frame_is_shrunk_by_one_scale_on_both_sides():
    """A 16 x 32 frame viewed at S = 8 is halved to 8 x 16 before its centre crop (columns
    4..11 of the halved frame): halving averages pairs, so halved column c shows source
    column 2c + 0.5 and halved row r source row 2r + 0.5."""
    frames = np.zeros((2, 16, 32, 3), np.uint8)
    frames[..., 0] = 7 * np.arange(32)[None, None, :]
    frames[..., 1] = 15 * np.arange(16)[None, :, None]
    view = pixels(evaluation_view(frames, SIZE))
    rows, columns = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    assert (np.abs(view[..., 0] - 7 * (2 * (columns + 4) + 0.5)) <= 1).all()
    assert (np.abs(view[..., 1] - 15 * (2 * rows + 0.5)) <= 1).all()
