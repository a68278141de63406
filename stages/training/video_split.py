"""Which videos pretraining trains on, evaluates on and (optionally) validates on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stages.clips.store import ClipStore
from stages.clips.windows import window_span
from stages.datasets.base import TEST, TRAIN
from stages.runtime.errors import ConfigError
from stages.runtime.progress import Progress


@dataclass
class TrainingVideos:
    """Rows of the frames table per role, and their true labels (-1 where unknown).

    `train` (N,) trains the model and forms the kNN gallery; `test` are kNN queries (never used
    to choose a checkpoint); `val`, carved from train when asked, chooses best.pt.
    `skipped_short` counts the training videos left out for being shorter than two windows.
    """

    train: np.ndarray
    test: np.ndarray
    val: np.ndarray
    labels: np.ndarray  # (all videos,) int64
    video_ids: np.ndarray
    class_names: list[str]
    skipped_short: int = 0

    @property
    def train_labels(self) -> np.ndarray:
        """(len(train),) int64 true labels of the training videos (-1 unknown)."""
        return self.labels[self.train]

    @property
    def test_labels(self) -> np.ndarray:
        """(len(test),) int64 true labels of the test videos (-1 unknown)."""
        return self.labels[self.test]

    @property
    def val_labels(self) -> np.ndarray:
        """(len(val),) int64 true labels of the validation videos (-1 unknown)."""
        return self.labels[self.val]

    @property
    def train_ids(self) -> np.ndarray:
        """Video ids of the training videos, in `train` order."""
        return self.video_ids[self.train]


def split_rows(store: ClipStore, split: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the train and of the test videos of official split `split`."""
    names = [str(n) for n in store.table.split_names]
    if str(split) not in names:
        raise ConfigError(f"{store.frames_path} has no split {split} (it has "
                          f"{', '.join(names)}); set data.split")
    membership = store.table.splits[:, names.index(str(split))]
    return np.flatnonzero(membership == TRAIN), np.flatnonzero(membership == TEST)


def select_training_videos(store: ClipStore, split: int, settings: Any,
                           progress: Progress) -> TrainingVideos:
    """Train/test rows of `split`; short videos skipped if asked; a val share if asked."""
    table = store.table
    train, test = split_rows(store, split)
    counts = table.columns["num_images"].astype(np.int64)
    # A video shorter than two windows is loop-padded, so its same-video positive would share
    # frames with the anchor: skipping it (the official code drops it) keeps positives apart.
    needed = 2 * window_span(settings.clip_length, settings.stride)
    short = counts[train] < needed
    skipped = 0
    if short.any():
        if settings.short_videos == "skip":
            skipped = int(short.sum())
            train = train[~short]
            progress.message(f"skipped {skipped} of {len(short)} training videos shorter than "
                             f"two windows ({needed} frames); pretrain.short_videos: loop keeps "
                             "them, loop-padded")
        else:
            progress.message(f"{int(short.sum())} training videos are shorter than two windows "
                             f"({needed} frames); they are loop-padded, so their same-video "
                             "positives overlap the anchor (pretrain.short_videos)")
    val = np.zeros(0, dtype=np.int64)
    if settings.best_by == "val":
        order = np.random.Generator(np.random.PCG64([settings.seed, 1])).permutation(len(train))
        count = max(1, int(round(settings.val_fraction * len(train))))
        val, train = np.sort(train[order[:count]]), np.sort(train[order[count:]])
    if len(train) < 2:
        hint = (f" ({skipped} shorter than two windows were skipped: lower pretrain.clip_length "
                "or pretrain.stride, or set pretrain.short_videos: loop)" if skipped else "")
        raise ConfigError(f"split {split} of {store.frames_path} has {len(train)} usable "
                          f"training videos{hint}; pretraining needs at least 2")
    labels = table.columns["label"].astype(np.int64)
    return TrainingVideos(train, test, val, labels, table.columns["video_id"],
                          list(table.class_names), skipped)
