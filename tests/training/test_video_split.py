import numpy as np
import pytest

from stages.clips.store import ClipStore
from stages.clips.windows import window_span
from stages.pretrain_config import PretrainConfig
from stages.runtime.errors import ConfigError
from stages.runtime.progress import SilentProgress
from stages.training.video_split import (
    hold_out_groups,
    select_training_videos,
    split_rows,
    video_group,
)


class Messages(SilentProgress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture(scope="module")
def store(motion_workspace):
    return ClipStore(motion_workspace / "synthetic" / "frames.h5")


def _clip_length_with_short_videos(store: ClipStore) -> tuple[int, np.ndarray]:
    """A clip length for which some, not all, training videos are shorter than two windows."""
    train, _ = split_rows(store, 1)
    counts = store.table.columns["num_images"][train]
    length = int(np.median(counts)) // 2 + 1
    short = train[counts < 2 * window_span(length, 1)]
    assert 0 < len(short) < len(train) - 2
    return length, short


def test_skip_is_the_default_and_counts_the_short_videos(store):
    length, short = _clip_length_with_short_videos(store)
    messages = Messages()
    videos = select_training_videos(store, 1, PretrainConfig(clip_length=length), messages)
    assert PretrainConfig().short_videos == "skip"
    assert videos.skipped_short == len(short)
    assert not set(short) & set(videos.train)
    assert len(videos.train) + len(short) == len(split_rows(store, 1)[0])
    assert any(f"skipped {len(short)} " in line for line in messages.lines)


def test_loop_keeps_the_short_videos(store):
    length, short = _clip_length_with_short_videos(store)
    messages = Messages()
    settings = PretrainConfig(clip_length=length, short_videos="loop")
    videos = select_training_videos(store, 1, settings, messages)
    assert videos.skipped_short == 0
    assert set(short) <= set(videos.train)
    assert any(line.startswith(f"{len(short)} training videos") for line in messages.lines)


def test_skipping_every_video_names_the_fix(store):
    longest = int(store.table.columns["num_images"].max())
    settings = PretrainConfig(clip_length=longest)
    with pytest.raises(ConfigError, match="short_videos: loop"):
        select_training_videos(store, 1, settings, SilentProgress())


# The tiny frames.h5 (tests/helpers.py): videos 0-7 of 12, 9, 16, 6, 20, 11, 14 and 8 frames,
# class i % 2; videos 3 and 7 are the test videos of split 1.
@pytest.fixture(scope="module")
def tiny_store(tiny_frames):
    return ClipStore(tiny_frames)


def test_split_rows_follow_the_membership_of_the_split(tiny_store):
    train, test = split_rows(tiny_store, 1)
    assert train.tolist() == [0, 1, 2, 4, 5, 6] and test.tolist() == [3, 7]
    with pytest.raises(ConfigError, match=r"has no split 2 \(it has 1\); set data.split"):
        split_rows(tiny_store, 2)


def test_selected_videos_carry_their_labels_and_ids(tiny_store):
    messages = Messages()
    videos = select_training_videos(tiny_store, 1, PretrainConfig(clip_length=4), messages)
    assert videos.train.tolist() == [0, 1, 2, 4, 5, 6] and videos.test.tolist() == [3, 7]
    assert videos.val.size == 0 and videos.skipped_short == 0 and messages.lines == []
    assert videos.train_labels.tolist() == [0, 1, 0, 0, 1, 0]
    assert videos.test_labels.tolist() == [1, 1] and videos.val_labels.size == 0
    assert list(videos.train_ids) == ["v0", "v1", "v2", "v4", "v5", "v6"]
    assert videos.class_names == ["Class0", "Class1"]


def test_the_stride_widens_the_windows_a_video_must_hold(tiny_store):
    # 4 frames every 2nd span 7; two windows need 14: the videos of 12, 9 and 11 frames go.
    videos = select_training_videos(tiny_store, 1, PretrainConfig(clip_length=4, stride=2),
                                    SilentProgress())
    assert videos.train.tolist() == [2, 4, 6] and videos.skipped_short == 3


def test_too_few_videos_left_names_the_skipped_ones(tiny_store):
    settings = PretrainConfig(clip_length=5, stride=2)  # needs 18 frames: only video 4 has them
    with pytest.raises(ConfigError, match="1 usable training videos .5 shorter than two windows"):
        select_training_videos(tiny_store, 1, settings, SilentProgress())
    looped = PretrainConfig(clip_length=5, stride=2, short_videos="loop")
    assert len(select_training_videos(tiny_store, 1, looped, SilentProgress()).train) == 6


def test_validation_share_is_carved_from_train_by_the_seed(tiny_store):
    def carve(seed: int, fraction: float = 0.34):
        settings = PretrainConfig(clip_length=2, best_by="val", val_fraction=fraction, seed=seed)
        return select_training_videos(tiny_store, 1, settings, SilentProgress())

    first = carve(3)
    assert len(first.val) == 2 and len(first.train) == 4  # round(0.34 * 6)
    assert sorted([*first.val, *first.train]) == [0, 1, 2, 4, 5, 6]
    assert list(first.val) == sorted(first.val) and list(first.train) == sorted(first.train)
    assert first.test.tolist() == [3, 7]  # test videos never validate
    again = carve(3)
    assert np.array_equal(first.val, again.val) and np.array_equal(first.train, again.train)
    assert any(not np.array_equal(first.val, carve(seed).val) for seed in (4, 5, 6))
    assert len(carve(3, fraction=0.01).val) == 1  # at least one validation video


@pytest.mark.parametrize("video_id, group", [
    ("v_ApplyEyeMakeup_g08_c01", "v_ApplyEyeMakeup_g08"),
    ("Run/v_Run_g25_c7", "Run/v_Run_g25"),
    ("brush_hair_u_nm_np1_ba_goo_0", "brush_hair_u_nm_np1_ba_goo_0"),  # HMDB51
    ("v_g08", "v_g08"),  # no clip number: no group
])
def test_video_group_is_ucf101s_performance_or_the_video_itself(video_id, group):
    assert video_group(video_id) == group


def ucf101_like_ids(classes: int = 4, groups: int = 5, clips: tuple[int, ...] = (2, 3, 4)
                    ) -> np.ndarray:
    """v_<class>_g<group>_c<clip> ids, groups of unequal sizes, in no particular order."""
    ids = [f"v_Class{c}_g{g:02d}_c{k:02d}" for c in range(classes) for g in range(1, groups + 1)
           for k in range(1, clips[(c + g) % len(clips)] + 1)]
    return np.random.default_rng(0).permutation(np.array(ids, dtype=object))


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3, 0.5])
def test_held_out_groups_are_whole_and_about_the_fraction(fraction):
    ids = ucf101_like_ids()
    rows = np.arange(5, len(ids))  # not every row is a training video
    largest = 4
    for seed in range(6):
        kept, held = hold_out_groups(rows, ids, fraction, np.random.default_rng(seed))
        assert sorted([*kept, *held]) == rows.tolist()
        assert list(kept) == sorted(kept) and list(held) == sorted(held)
        kept_groups = {video_group(v) for v in ids[kept]}
        held_groups = {video_group(v) for v in ids[held]}
        assert not kept_groups & held_groups
        wanted = max(1, round(fraction * len(rows)))
        assert wanted <= len(held) < wanted + largest


def test_holding_out_nothing_and_never_everything():
    ids = ucf101_like_ids()
    rows = np.arange(len(ids))
    kept, held = hold_out_groups(rows, ids, 0.0, np.random.default_rng(0))
    assert kept.tolist() == rows.tolist() and held.size == 0
    two_groups = np.array(["v_A_g01_c01", "v_A_g01_c02", "v_A_g02_c01"], dtype=object)
    kept, held = hold_out_groups(np.arange(3), two_groups, 0.9, np.random.default_rng(0))
    assert len(kept) and len(held)  # one group always stays to train on


def test_no_group_of_a_ucf101_layout_dataset_is_split_by_validation(motion_workspace):
    """The motion workspace is laid out as UCF101 (v_<class>_g<group>_c<clip>, 2 clips a
    group): pretraining's and the classifiers' validation shares take whole groups."""
    from stages.training.classification import classifier_split

    store = ClipStore(motion_workspace / "synthetic" / "frames.h5")
    ids = store.table.columns["video_id"]
    for seed in range(4):
        settings = PretrainConfig(clip_length=2, best_by="val", val_fraction=0.2, seed=seed)
        videos = select_training_videos(store, 1, settings, SilentProgress())
        train, val, test = classifier_split(store, 1, 0.2, seed)
        for kept, held in ((videos.train, videos.val), (train, val)):
            assert len(held) >= 2
            assert not {video_group(v) for v in ids[kept]} & {video_group(v) for v in ids[held]}
        assert not set(test) & set(val)
