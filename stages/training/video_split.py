"""Which videos pretraining trains on, evaluates on and (optionally) validates on."""

from __future__ import annotations

import re
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


# UCF101's names (and the synthetic data's): v_<Class>_g<group>_c<clip>. The clips of one group
# are cut from one performance, so they are near-duplicates of each other.
GROUPED_NAME = re.compile(r"^(?P<group>.+_g\d+)_c\d+$")


def video_group(video_id: str) -> str:
    """The group a video belongs to: `v_Run_g08` for `v_Run_g08_c03` (UCF101's naming: the
    class and the performance), the video itself where the name shows no group (HMDB51,
    Kinetics-400, own folders)."""
    found = GROUPED_NAME.match(str(video_id))
    return found["group"] if found else str(video_id)


def hold_out_groups(rows: np.ndarray, video_ids: np.ndarray, fraction: float,
                    generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split `rows` (N,) into (kept, held out), both sorted, holding out whole groups
    (`video_group` of `video_ids[rows]`) in a random order until they hold at least
    round(fraction x N) videos (at least one when fraction > 0), and keeping at least one
    group. A group never has videos on both sides; `fraction` 0 holds out nothing."""
    rows = np.asarray(rows, dtype=np.int64)
    if fraction <= 0 or len(rows) == 0:
        return np.sort(rows), np.zeros(0, dtype=np.int64)
    groups = np.array([video_group(v) for v in np.asarray(video_ids)[rows]], dtype=object)
    names, members = np.unique(groups, return_inverse=True)
    sizes = np.bincount(members, minlength=len(names))
    wanted = max(1, int(round(fraction * len(rows))))
    held_groups: list[int] = []
    held = 0
    for group in generator.permutation(len(names))[:max(len(names) - 1, 0)]:
        if held >= wanted:
            break
        held_groups.append(int(group))
        held += int(sizes[group])
    out = np.isin(members, held_groups)
    return np.sort(rows[~out]), np.sort(rows[out])


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
        train, val = hold_out_groups(train, table.columns["video_id"], settings.val_fraction,
                                     np.random.Generator(np.random.PCG64([settings.seed, 1])))
    if len(train) < 2:
        hint = (f" ({skipped} shorter than two windows were skipped: lower pretrain.clip_length "
                "or pretrain.stride, or set pretrain.short_videos: loop)" if skipped else "")
        raise ConfigError(f"split {split} of {store.frames_path} has {len(train)} usable "
                          f"training videos{hint}; pretraining needs at least 2")
    labels = table.columns["label"].astype(np.int64)
    return TrainingVideos(train, test, val, labels, table.columns["video_id"],
                          list(table.class_names), skipped)
