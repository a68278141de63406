"""Training clips for classification: one random window a video, augmented, with its label."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from stages.clips.augment import AugmentSettings, augment_clip, draw_augmentation
from stages.clips.store import ClipStore
from stages.clips.triplets import ItemKey, item_generator, split_key
from stages.clips.windows import random_start, window

# The downstream augmentation of the paper's code (from CoCLR): crop area 0.2-1, jitter
# 0.4/0.4/0.4/0.1 with probability 0.3, no grayscale, no blur.
FINETUNE_AUGMENT = dict(min_crop_area=0.2, jitter=0.4, hue=0.1, jitter_probability=0.3,
                        grayscale_probability=0.0, blur_probability=0.0)


class LabelledClips(Dataset):
    """Item (epoch, i) -> (clip (3, T, S, S) uint8, label int) of video `videos[i]`, its window
    and augmentation seeded by (seed, epoch, i); a bare i is an item of epoch 0."""

    def __init__(self, store: ClipStore, videos: np.ndarray, clip_length: int, stride: int,
                 crop_size: int, seed: int) -> None:
        self.store, self.videos, self.seed = store, videos, seed
        self.clip_length, self.stride = clip_length, stride
        self.augment = AugmentSettings(crop_size, **FINETUNE_AUGMENT)
        self.labels = store.table.columns["label"].astype(np.int64)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: ItemKey | int) -> tuple[torch.Tensor, int]:
        epoch, index = split_key(key)
        rng = item_generator(self.seed, epoch, index)
        video = int(self.videos[index])
        count = self.store.frame_count(video)
        start = random_start(count, self.clip_length, self.stride, rng)
        frames = self.store.rgb(video, window(start, self.clip_length, self.stride, count))
        augmentation = draw_augmentation(frames.shape[1], frames.shape[2], self.augment, rng)
        return augment_clip(frames, augmentation, self.augment.crop_size), int(self.labels[video])
