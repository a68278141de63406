"""Which frames each clip of a training item shows, on a store whose every frame is one flat
level that spells its video and frame: aug(x) holds exactly the anchor's frames in the
anchor's order, and the positive its own video's frames, as RGB or as flow."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from stages.clips.augment import IMAGENET_MEAN, IMAGENET_STD, AugmentSettings
from stages.clips.triplets import TripletClips
from stages.pretrain import triplet_settings
from stages.pretrain_config import PretrainConfig

HEIGHT, WIDTH, CROP, LENGTH = 20, 24, 16, 4
FRAME_COUNTS = [30, 41, 26, 35]


def level(video: int, frame: int) -> int:
    """The flat level of a frame: distinct for every (video < 4, frame < 60)."""
    return 4 * frame + video


class LevelStore:
    """Stand-in for ClipStore: frame f of video v is a flat image of `level(v, f)`, its flow
    (every channel) the flat level 255 - level(v, f)."""

    def __init__(self) -> None:
        self.table = SimpleNamespace(columns={"height": np.full(4, HEIGHT),
                                              "width": np.full(4, WIDTH)})

    def frame_count(self, video: int) -> int:
        return FRAME_COUNTS[video]

    def has_flow(self, video: int) -> bool:
        return True

    def rgb(self, video: int, frames: np.ndarray) -> np.ndarray:
        values = np.array([level(video, int(f)) for f in frames], np.uint8)
        return np.broadcast_to(values[:, None, None, None], (len(frames), HEIGHT, WIDTH, 3)).copy()

    def flow(self, video: int, frames: np.ndarray, channel: str = "u") -> np.ndarray:
        values = np.array([255 - level(video, int(f)) for f in frames], np.uint8)
        return np.broadcast_to(values[:, None, None], (len(frames), HEIGHT, WIDTH)).copy()


def frame_levels(clip) -> list[int]:
    """The level of each frame of a normalised (3, T, S, S) clip of flat gray frames."""
    pixels = clip * IMAGENET_STD * 255 + IMAGENET_MEAN * 255
    assert float(pixels.std(dim=(0, 2, 3)).max()) < 0.01  # still flat and gray
    return [round(float(v)) for v in pixels.mean(dim=(0, 2, 3))]


def items(flow_augment: str = "consistent", **changes) -> TripletClips:
    """Items of the 4 level videos, with no colour augmentation (crop and flip keep a flat
    frame's level), every video in cluster 0."""
    settings = triplet_settings(PretrainConfig(clip_length=LENGTH, crop_size=CROP, stride=2))
    augment = AugmentSettings(crop_size=CROP, jitter_probability=0.0,
                              grayscale_probability=0.0, blur_probability=0.0,
                              flow_augment=flow_augment)
    data = TripletClips(LevelStore(), np.arange(4), replace(settings, augment=augment, **changes),
                        seed=11)
    data.set_clusters(np.zeros(4, np.int64))
    return data


@pytest.mark.parametrize("anchor", ["start", "random"])
def test_augmented_anchor_shows_the_anchor_frames_in_order(anchor):
    data = items(anchor=anchor, p_beta=1.0)
    for epoch in range(3):
        data.set_epoch(epoch)
        for index in range(4):
            item = data[index]
            frames = item["anchor_frames"].tolist()
            assert frames == sorted(frames) and len(set(frames)) == LENGTH
            expected = [level(index, f) for f in frames]
            assert frame_levels(item["anchor"]) == expected
            assert frame_levels(item["augmented"]) == expected


def test_positive_shows_its_own_video_frames():
    for p_alpha in (0.0, 1.0):
        data = items(p_alpha=p_alpha, p_beta=1.0)
        for index in range(4):
            item = data[index]
            mate = item["positive_index"]
            assert (mate == index) == (p_alpha == 1.0)
            expected = [level(mate, f) for f in item["positive_frames"].tolist()]
            assert frame_levels(item["positive"]) == expected


def test_flow_views_show_the_flow_of_the_same_frames():
    # "official" treats flow as a gray image, so a flip does not negate u and the flat level
    # stays what was stored.
    data = items(p_beta=0.0, flow_replaces="positive_and_augmented", flow_augment="official")
    for index in range(4):
        item = data[index]
        assert item["positive_flow"] and item["augmented_flow"]
        anchor = [255 - level(index, f) for f in item["anchor_frames"].tolist()]
        positive = [255 - level(item["positive_index"], f)
                    for f in item["positive_frames"].tolist()]
        assert frame_levels(item["augmented"]) == anchor
        assert frame_levels(item["positive"]) == positive
