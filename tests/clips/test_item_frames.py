"""Which frames each clip of a training item shows, on a store whose every frame is one flat
level that spells its video and frame: aug(x) holds exactly the anchor's frames in the
anchor's order, and the positive its own video's frames, as RGB or as flow."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from stages.clips.augment import AugmentSettings
from stages.clips.triplets import TripletClips
from stages.pretrain_config import PretrainConfig
from stages.slic_training import triplet_settings

HEIGHT, WIDTH, CROP, LENGTH = 20, 24, 16, 4
FRAME_COUNTS = [30, 41, 26, 35]


def level(video: int, frame: int) -> int:
    """The flat level of a frame: distinct for every (video < 4, frame < 60)."""
    return 4 * frame + video


class LevelStore:
    """Stand-in for ClipStore: frame f of video v is a flat image of `level(v, f)`, its u flow
    the flat level 255 - level(v, f), any other flow channel level(v, f) // 2."""

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
        values = np.array([255 - level(video, int(f)) if channel == "u" else
                           level(video, int(f)) // 2 for f in frames], np.uint8)
        return np.broadcast_to(values[:, None, None], (len(frames), HEIGHT, WIDTH)).copy()


def frame_levels(clip) -> list[int]:
    """The level of each frame of a normalised (3, T, S, S) clip of flat gray frames."""
    pixels = clip.float()
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
        for index in range(4):
            item = data[(epoch, index)]
            frames = item["anchor_frames"].tolist()
            assert frames == sorted(frames) and len(set(frames)) == LENGTH
            assert anchor == "random" or frames[0] == 0
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


def test_flow_views_show_the_configured_channel():
    data = items(p_beta=0.0, flow_channel="v", flow_augment="official")
    for index in range(4):
        item = data[index]
        expected = [level(item["positive_index"], f) // 2
                    for f in item["positive_frames"].tolist()]
        assert frame_levels(item["positive"]) == expected


def test_p_alpha_and_p_beta_are_the_shares_of_same_video_positives_and_flow_views():
    """Over 15 epochs of the 4 videos (one cluster): about p_alpha of the positives are the
    anchor's own video, the others spread over all its cluster-mates; about 1 - p_beta of the
    positives and (independently) of the aug(x) clips are flow views."""
    data = items(p_alpha=0.3, p_beta=0.25, flow_replaces="positive_and_augmented")
    same, positive_flow, augmented_flow = [], [], []
    mates: dict[int, set[int]] = {index: set() for index in range(4)}
    for epoch in range(15):
        for index in range(4):
            item = data[(epoch, index)]
            same.append(item["positive_index"] == index)
            mates[index].add(item["positive_index"])
            positive_flow.append(item["positive_flow"])
            augmented_flow.append(item["augmented_flow"])
    assert np.mean(same) == pytest.approx(0.3, abs=0.15)
    assert np.mean(positive_flow) == pytest.approx(0.75, abs=0.15)
    assert np.mean(augmented_flow) == pytest.approx(0.75, abs=0.15)
    assert all(seen == {0, 1, 2, 3} for seen in mates.values())


class HalfFlowStore(LevelStore):
    """A LevelStore whose video 1 has no flow."""

    def has_flow(self, video: int) -> bool:
        return video != 1


def test_positives_come_from_the_anchor_cluster_and_lone_videos_are_their_own():
    """Clusters [7, 3, 7, 9]: videos 0 and 2 take each other (p_alpha 0), 1 and 3 have no mate
    and take themselves; a clip of a video without flow is never a flow view."""
    data = items(p_alpha=0.0, p_beta=0.0, flow_replaces="positive_and_augmented")
    data.store = HalfFlowStore()
    data.set_clusters(np.array([7, 3, 7, 9]))
    for epoch in range(2):
        batch = [data[(epoch, index)] for index in range(4)]
        assert [item["positive_index"] for item in batch] == [2, 1, 0, 3]
        assert [item["cluster"] for item in batch] == [7, 3, 7, 9]
        flows = [(item["positive_flow"], item["augmented_flow"]) for item in batch]
        assert flows == [(True, True), (False, False), (True, True), (True, True)]


def test_anchor_and_positive_are_strided_windows_inside_their_videos():
    """Every video here is longer than a window (7 frames at stride 2), so neither clip wraps:
    each is LENGTH frames every 2nd frame inside its own video, a cluster-mate's too."""
    data = items(p_alpha=0.5, p_beta=1.0)
    for epoch in range(6):
        for index in range(4):
            item = data[(epoch, index)]
            for frames, video in ((item["anchor_frames"], index),
                                  (item["positive_frames"], item["positive_index"])):
                assert np.diff(frames.numpy()).tolist() == [2] * (LENGTH - 1)
                assert 0 <= int(frames[0]) and int(frames[-1]) < FRAME_COUNTS[video]


def test_renaming_the_clusters_changes_no_positive():
    """Pseudo-labels are only names: the same partition of 64 items under other cluster ids
    gives every item the same cluster-mate (the mates of a cluster are kept in item order)."""
    settings = replace(items().settings, p_alpha=0.0, p_beta=1.0)
    partition = np.random.default_rng(0).integers(0, 4, 64)
    chosen = []
    for names in ([0, 1, 2, 3], [2, 0, 3, 1]):
        data = TripletClips(LevelStore(), np.tile(np.arange(4), 16), settings, seed=3)
        data.set_clusters(np.array(names)[partition])
        chosen.append([data[index]["positive_index"] for index in range(0, 64, 4)])
    assert chosen[0] == chosen[1]
    assert all(partition[mate] == partition[index]
               for index, mate in zip(range(0, 64, 4), chosen[0]))


def test_a_new_dataset_draws_epoch_zero():
    fresh, zero = items(), items()
    for index in range(4):
        assert fresh[index]["anchor_frames"].tolist() == zero[(0, index)]["anchor_frames"].tolist()
        assert frame_levels(fresh[index]["positive"]) == frame_levels(zero[(0, index)]["positive"])


def test_a_stretched_magnitude_view_keeps_zero_speed_at_level_zero():
    """flow_contrast "clip" on magnitude views: one gain for the clip, 96 / its fastest level
    (each flat frame is a quarter of the pixels, so the 99th percentile is the largest)."""
    data = items(p_beta=0.0, flow_channel="magnitude", flow_contrast="clip",
                 flow_augment="official")
    for index in range(4):
        item = data[index]
        stored = [level(item["positive_index"], f) // 2 for f in item["positive_frames"].tolist()]
        gain = min(16.0, max(1.0, 96 / max(stored)))
        assert frame_levels(item["positive"]) == [round(v * gain) for v in stored]


def test_an_item_names_its_own_position_and_its_positives():
    data = items(p_alpha=0.0, p_beta=1.0)
    for index in range(4):
        item = data[index]
        assert item["index"] == index and item["cluster"] == 0
        assert item["positive_index"] != index and not item["positive_flow"]
