import numpy as np
import pytest

from stages.clips.store import ClipStore
from stages.clips.windows import window_span
from stages.errors import ConfigError
from stages.pretrain_config import PretrainConfig
from stages.progress import SilentProgress
from stages.training.video_split import select_training_videos, split_rows


class Messages(SilentProgress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture(scope="module")
def store(training_workspace):
    return ClipStore(training_workspace / "synthetic" / "frames.h5")


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
