"""Training items for SLIC: an anchor clip, a positive clip and an augmented anchor.

Every random choice of an item comes from a generator seeded by (seed, epoch, video), so an
item is the same whichever DataLoader worker makes it and whether or not the run was resumed.
An item is asked for by its key (epoch, position): the sampler carries the epoch, so workers
that persist from epoch to epoch need no word of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from stages.clips.augment import (
    AugmentSettings,
    augment_clip,
    colour_draw,
    draw_augmentation,
    stretch_flow_view,
)
from stages.clips.device_colour import colour_parameters
from stages.clips.store import ClipStore
from stages.clips.windows import anchor_and_positive_starts, random_start, window
from stages.runtime.choices import FLOW_CONTRASTS, FLOW_REPLACEMENTS

# Which clips of an item may become the flow view: the positive only (the poster), or the
# positive and, independently, aug(x) (the official code).


@dataclass(frozen=True, kw_only=True)
class TripletSettings:
    """How a training item is sampled. No defaults here: `pretrain.triplet_settings` builds it
    from the pretrain config section, the one place of every default and its meaning."""

    clip_length: int
    stride: int
    anchor: str  # one of ANCHOR_MODES
    p_alpha: float
    p_beta: float
    multiview: bool
    flow_channel: str  # one of FLOW_CHANNELS
    flow_contrast: str  # one of FLOW_CONTRASTS
    augment: AugmentSettings
    flow_replaces: str  # one of FLOW_REPLACEMENTS

    def __post_init__(self) -> None:
        if self.flow_replaces not in FLOW_REPLACEMENTS:
            raise ValueError(f"flow_replaces is {self.flow_replaces!r}; use one of "
                             f"{', '.join(FLOW_REPLACEMENTS)}")
        if self.flow_contrast not in FLOW_CONTRASTS:
            raise ValueError(f"flow_contrast is {self.flow_contrast!r}; use one of "
                             f"{', '.join(FLOW_CONTRASTS)}")


ItemKey = tuple[int, int]  # (epoch, position of the item)


def item_generator(seed: int, epoch: int, video: int) -> np.random.Generator:
    """The generator behind every random choice of one item in one epoch."""
    return np.random.Generator(np.random.PCG64([seed, epoch, video]))


def split_key(key: ItemKey | int) -> ItemKey:
    """(epoch, position) of a sampler key; a bare position is an item of epoch 0."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return 0, int(key)


class TripletClips(Dataset):
    """Item (epoch, i) of `videos` (rows of the frames table) -> a dict of three clips and
    metadata (a bare i is an item of epoch 0).

    Keys: `anchor`, `positive`, `augmented` (3, T, S, S) uint8 (when augment.colour_on is
    device, `<clip>_colour` (COLOUR_FIELDS,) float32 too: the colour operations the device
    applies to it); `index` (this item's
    position i), `positive_index` (position of the positive's video), `cluster` (pseudo-label
    of both), `positive_flow` and `augmented_flow` (bool: the clip is the flow view),
    `anchor_frames` and `positive_frames` (T,) int64 frame indices.
    """

    def __init__(self, store: ClipStore, videos: np.ndarray, settings: TripletSettings,
                 seed: int) -> None:
        self.store, self.videos, self.settings, self.seed = store, videos, settings, seed
        self.set_clusters(np.arange(len(videos)))

    def set_clusters(self, clusters: np.ndarray) -> None:
        """Use `clusters` (len(videos),) int as pseudo-labels for choosing positives (workers
        hold a copy: a loader made before this call keeps the clusters it was made with)."""
        self.clusters = np.asarray(clusters, dtype=np.int64)
        order = np.argsort(self.clusters, kind="stable")
        bounds = np.flatnonzero(np.diff(self.clusters[order])) + 1
        self.members = {int(self.clusters[group[0]]): group
                        for group in np.split(order, bounds)}

    def __len__(self) -> int:
        return len(self.videos)

    def _positive_video(self, index: int, rng: np.random.Generator) -> int:
        mates = self.members[int(self.clusters[index])]
        if len(mates) == 1 or rng.random() < self.settings.p_alpha:
            return index
        others = mates[mates != index]
        return int(others[rng.integers(0, len(others))])

    def _view(self, video: int, frames: np.ndarray, rgb: np.ndarray | None,
              rng: np.random.Generator, use_flow: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """A clip (3, T, S, S) uint8 and its colour parameters (COLOUR_FIELDS,): those still
        to apply on the device when augment.colour_on is device, else all "none"."""
        height, width = (rgb.shape[1:3] if rgb is not None else
                         (int(self.store.table.columns["height"][video]),
                          int(self.store.table.columns["width"][video])))
        augmentation = draw_augmentation(height, width, self.settings.augment, rng)
        if use_flow:
            pixels = self.store.flow(video, frames, self.settings.flow_channel)
            if self.settings.flow_contrast == "clip":
                pixels = stretch_flow_view(pixels, self.settings.flow_channel)
        else:
            pixels = rgb if rgb is not None else self.store.rgb(video, frames)
        flow = self.settings.flow_channel if use_flow else None
        augment = self.settings.augment
        on_device = augment.colour_on == "device"
        clip = augment_clip(pixels, augmentation, augment.crop_size, flow=flow,
                            flow_augment=augment.flow_augment, colour=not on_device)
        later = colour_draw(augmentation, flow, augment.flow_augment) if on_device else None
        return clip, colour_parameters(later)

    def __getitem__(self, key: ItemKey | int) -> dict[str, torch.Tensor | int | bool]:
        epoch, index = split_key(key)
        settings, rng = self.settings, item_generator(self.seed, epoch, index)
        length, stride = settings.clip_length, settings.stride
        video = int(self.videos[index])
        count = self.store.frame_count(video)
        anchor_start, same_start = anchor_and_positive_starts(count, length, stride,
                                                              settings.anchor, rng)
        positive_index = self._positive_video(index, rng)
        positive_video = int(self.videos[positive_index])
        if positive_index == index:
            positive_frames = window(same_start, length, stride, count)
        else:
            mate_count = self.store.frame_count(positive_video)
            positive_frames = window(random_start(mate_count, length, stride, rng), length,
                                     stride, mate_count)
        anchor_frames = window(anchor_start, length, stride, count)
        # aug(x)'s draw is made whatever flow_replaces says, so that the positive's draw and
        # every later choice of the item do not depend on it.
        can_flow = settings.multiview and self.store.has_flow(video)
        augmented_flow = (can_flow and bool(rng.random() >= settings.p_beta)
                          and settings.flow_replaces == "positive_and_augmented")
        positive_flow = (settings.multiview and self.store.has_flow(positive_video)
                         and bool(rng.random() >= settings.p_beta))
        anchor_rgb = self.store.rgb(video, anchor_frames)
        anchor, anchor_colour = self._view(video, anchor_frames, anchor_rgb, rng, False)
        augmented, augmented_colour = self._view(video, anchor_frames, anchor_rgb, rng,
                                                 augmented_flow)
        positive, positive_colour = self._view(positive_video, positive_frames, None, rng,
                                               positive_flow)
        colour = ({"anchor_colour": anchor_colour, "augmented_colour": augmented_colour,
                   "positive_colour": positive_colour}
                  if settings.augment.colour_on == "device" else {})
        return {
            "anchor": anchor, "augmented": augmented, "positive": positive, **colour,
            "anchor_frames": torch.from_numpy(anchor_frames),
            "positive_frames": torch.from_numpy(positive_frames),
            "index": index, "positive_index": positive_index,
            "cluster": int(self.clusters[index]),
            "positive_flow": positive_flow, "augmented_flow": augmented_flow,
        }


class EpochSampler(Sampler[ItemKey]):
    """A seeded permutation per epoch, as item keys (epoch, position), dealt to `world` ranks
    in groups of `group` consecutive items: rank r takes groups r, r + world, r + 2 world, ...

    With groups of a step's mining group size, a step's B items form the same groups on 1, 2
    or 8 ranks: global step s is groups s B/group .. (s + 1) B/group - 1 however they are
    dealt. Every rank gets the same number of items: the permutation is cut to a multiple of
    world x group.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1,
                 group: int = 1) -> None:
        self.size, self.seed, self.rank, self.world, self.group = size, seed, rank, world, group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Seed the permutation with `epoch`, so every epoch visits the items in a new order."""
        self.epoch = epoch

    def __iter__(self):
        order = np.random.Generator(np.random.PCG64([self.seed, self.epoch, 2**31])).permutation(
            self.size)
        groups = order[:len(self) * self.world].reshape(-1, self.group)
        mine = groups[self.rank::self.world].reshape(-1)
        return iter([(self.epoch, position) for position in mine.tolist()])

    def __len__(self) -> int:
        return self.size // (self.world * self.group) * self.group
