import numpy as np
import pytest

from stages.clips.store import ClipStore
from stages.clips.windows import window_span
from stages.pretrain_config import PretrainConfig
from stages.runtime.errors import ConfigError
from stages.runtime.progress import SilentProgress
from stages.training.video_split import select_training_videos, split_rows


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
