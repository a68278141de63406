"""Evaluation clips: fixed windows of every video, resized and centre-cropped, no randomness."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from stages.clips.augment import evaluation_view
from stages.clips.store import ClipStore
from stages.clips.windows import centre_window, spaced_windows


class EvaluationClips(Dataset):
    """Item i -> (clip (3, T, S, S) uint8, video position) for `clips_per_video` views a video.

    A view is one of `windows` temporal windows (the centre clip when 1, else evenly spaced)
    and one of `crops` spatial crops (1, 3 or 10). Items run video by video: view i %
    clips_per_video of video i // clips_per_video, windows varying slowest.
    """

    def __init__(self, store: ClipStore, videos: np.ndarray, clip_length: int, stride: int,
                 crop_size: int, windows: int = 1, crops: int = 1) -> None:
        self.store, self.videos = store, videos
        self.clip_length, self.stride, self.crop_size = clip_length, stride, crop_size
        self.windows, self.crops = windows, crops
        self.clips_per_video = windows * crops

    def __len__(self) -> int:
        return len(self.videos) * self.clips_per_video

    def frames_of(self, position: int, window: int) -> np.ndarray:
        """(T,) int frame indices of window `window` of the video at `position` in `videos`: the
        centre clip when there is one window, else the window-th of evenly spaced ones."""
        count = self.store.frame_count(int(self.videos[position]))
        if self.windows == 1:
            return centre_window(count, self.clip_length, self.stride)
        return spaced_windows(count, self.clip_length, self.stride, self.windows)[window]

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        position, view = divmod(item, self.clips_per_video)
        window, crop = divmod(view, self.crops)
        frames = self.store.rgb(int(self.videos[position]), self.frames_of(position, window))
        return evaluation_view(frames, self.crop_size, self.crops, crop), position
