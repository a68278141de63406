"""Evaluation clips: fixed windows of every video, resized and centre-cropped, no randomness."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from stages.clips.augment import centre_crop_clip
from stages.clips.store import ClipStore
from stages.clips.windows import centre_window, spaced_windows


class EvaluationClips(Dataset):
    """Item i -> (clip (3, T, S, S) float32, i, window w) for `clips_per_video` windows a video.

    One window is the centre clip; more are evenly spaced over the video. Items run video by
    video: item i is window i % clips_per_video of video i // clips_per_video.
    """

    def __init__(self, store: ClipStore, videos: np.ndarray, clip_length: int, stride: int,
                 crop_size: int, clips_per_video: int = 1) -> None:
        self.store, self.videos = store, videos
        self.clip_length, self.stride, self.crop_size = clip_length, stride, crop_size
        self.clips_per_video = clips_per_video

    def __len__(self) -> int:
        return len(self.videos) * self.clips_per_video

    def frames_of(self, position: int, clip: int) -> np.ndarray:
        count = self.store.frame_count(int(self.videos[position]))
        if self.clips_per_video == 1:
            return centre_window(count, self.clip_length, self.stride)
        return spaced_windows(count, self.clip_length, self.stride, self.clips_per_video)[clip]

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        position, clip = divmod(item, self.clips_per_video)
        frames = self.store.rgb(int(self.videos[position]), self.frames_of(position, clip))
        return centre_crop_clip(frames, self.crop_size), position
