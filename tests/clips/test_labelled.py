"""Classification training clips: one augmented window a video with its label, seeded."""

import numpy as np
import pytest
import torch

from stages.clips.augment import AugmentSettings
from stages.clips.labelled import LabelledClips
from stages.clips.store import ClipStore
from tests.helpers import TinyVideo, write_frames, write_tiny_frames


@pytest.fixture(scope="module")
def store(tiny_frames):
    return ClipStore(tiny_frames)


def clips(store, videos=(5, 0, 3, 6), seed=1, **changes):
    settings = {"clip_length": 4, "stride": 2, "crop_size": 16, **changes}
    return LabelledClips(store, np.array(videos), seed=seed, **settings)


def test_items_are_clips_of_the_given_videos_with_their_labels(store):
    data = clips(store)
    assert len(data) == 4
    table_labels = store.table.columns["label"]
    for index, video in enumerate((5, 0, 3, 6)):
        clip, label = data[index]
        assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.uint8
        assert isinstance(label, int) and label == table_labels[video]
    assert [data[i][1] for i in range(4)] == [1, 0, 1, 0]  # video i has class i % 2


def test_items_depend_only_on_seed_epoch_and_index(store):
    first, second = clips(store), clips(store)
    for index in (3, 0, 2):  # any order of access
        assert torch.equal(first[(2, index)][0], second[(2, index)][0])
    assert not torch.equal(first[(2, 0)][0], second[(3, 0)][0])
    assert torch.equal(first[(2, 0)][0], second[(2, 0)][0])
    assert not torch.equal(first[(2, 0)][0], clips(store, seed=2)[(2, 0)][0])


@pytest.fixture(scope="module")
def ramp_store(tmp_path_factory):
    """Videos of 20 and 6 flat gray frames, frame t at level 10 + 8 t."""
    path = tmp_path_factory.mktemp("ramp") / "frames.h5"
    return ClipStore(write_tiny_frames(path, frame_counts=(20, 6), ramp=True))


def frame_levels(clip: torch.Tensor) -> np.ndarray:
    """(T,) gray level of each frame of a flat clip, un-normalised; checks the frames are flat."""
    pixels = clip.float().numpy()
    assert np.ptp(pixels.reshape(3, len(pixels[0]), -1), axis=(0, 2)).max() < 1.5
    return pixels.mean(axis=(0, 2, 3))


def test_a_clip_is_one_window_of_consecutive_strided_frames(ramp_store):
    """Crops, flips and colour jitter keep flat gray frames flat and in order (jitter scales
    every frame alike), so the levels of a window every 2nd frame rise in equal steps."""
    starts = set()
    for epoch in range(6):
        data = LabelledClips(ramp_store, np.array([0]), 4, 2, 16, seed=0)
        levels = frame_levels(data[(epoch, 0)][0])
        steps = np.diff(levels)
        assert (steps > 5).all() and np.ptp(steps) <= 2.5, levels
        starts.add(round(float(levels[0] / steps.mean()), 1))
    assert len(starts) > 1  # the window starts at a random frame


def test_windows_of_short_videos_loop_instead_of_failing(ramp_store):
    """Video 1 has 6 frames; 4 frames every 2nd span 7: the window wraps to the first frame."""
    data = LabelledClips(ramp_store, np.array([1]), 4, 2, 16, seed=0)
    clip, label = data[0]
    assert clip.shape == (3, 4, 16, 16) and label == 1
    levels = frame_levels(clip)
    assert (np.diff(levels[:3]) > 5).all()  # frames 0, 2, 4, then frame 0 again
    assert levels[3] == pytest.approx(levels[0], abs=1.0)


def test_a_new_dataset_draws_epoch_zero(store):
    """A bare position is the item of epoch 0."""
    fresh, zero = clips(store), clips(store)
    for index in range(4):
        assert torch.equal(fresh[index][0], zero[(0, index)][0])


def test_the_augmentation_is_the_downstream_one_of_the_paper_code(store):
    """CoCLR's downstream augmentation: crop area 0.2-1, jitter 0.4/0.4/0.4/0.1 with
    probability 0.3, no grayscale, no blur (not SLIC's pretraining strengths)."""
    assert clips(store).augment == AugmentSettings(16, min_crop_area=0.2, jitter=0.4, hue=0.1,
                                                   jitter_probability=0.3,
                                                   grayscale_probability=0.0,
                                                   blur_probability=0.0)


def test_crops_reach_every_part_of_a_tall_frame(tmp_path):
    """Crop boxes are drawn over the whole H x W frame: on black 32 x 16 frames with a white
    patch in the bottom right corner, some epochs' crops show the patch."""
    frames = np.zeros((6, 32, 16, 3), np.uint8)
    frames[:, 24:, 12:] = 255
    path = write_frames(tmp_path / "frames.h5", [TinyVideo("tall", 0, frames)], ["Class0"])
    data = LabelledClips(ClipStore(path), np.array([0]), 4, 1, 16, seed=0)
    brightest = []
    for epoch in range(10):
        clip = data[(epoch, 0)][0].float()
        brightest.append(float(clip.max()))
    assert max(brightest) > 120 and min(brightest) < 60
