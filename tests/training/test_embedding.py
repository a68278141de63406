"""Embedding videos in eval mode: one row per video, in video order, whatever the batch size."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from stages.clips.augment import normalise_clips
from stages.clips.fixed_windows import EvaluationClips
from stages.clips.store import ClipStore
from stages.models.encoder import Encoder
from stages.runtime.progress import SilentProgress
from stages.training.compute import Compute
from stages.training.embedding import embed_clips

CPU = Compute(torch.device("cpu"), "off", torch.contiguous_format)


class ChannelMeans(nn.Module):
    """embed -> (B, 3) mean of each colour channel of a clip; notes the mode it ran in and
    whether autograd was recording."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.modes: list[bool] = []
        self.recording: list[bool] = []

    def embed(self, clips: torch.Tensor, feature: str = "projection") -> torch.Tensor:
        self.modes.append(self.training)
        self.recording.append(torch.is_grad_enabled())
        return clips.mean(dim=(2, 3, 4)) * self.scale


class Recorder(SilentProgress):
    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.advanced = 0
        self.finished = 0

    def start(self, description: str, total: int) -> None:
        self.started.append((description, total))

    def advance(self, steps: int = 1) -> None:
        self.advanced += steps

    def finish(self) -> None:
        self.finished += 1


@pytest.fixture(scope="module")
def store(tiny_frames):
    return ClipStore(tiny_frames)


def embed(encoder, clips, batch_size, progress=None, **kwargs):
    return embed_clips(encoder, clips, feature="projection", batch_size=batch_size, workers=0,
                       compute=CPU, progress=progress or SilentProgress(), **kwargs)


def test_rows_follow_the_videos_and_average_their_clips(store):
    videos = np.array([5, 0, 3, 6])
    clips = EvaluationClips(store, videos, clip_length=4, stride=2, crop_size=16, windows=2,
                            crops=3)
    encoder = ChannelMeans()
    progress = Recorder()
    features = embed(encoder, clips, batch_size=5, progress=progress)
    assert features.shape == (4, 3) and features.dtype == np.float32
    per_clip = np.stack([normalise_clips(clips[item][0]).mean(dim=(1, 2, 3)).numpy()
                         for item in range(24)])
    assert np.allclose(features, per_clip.reshape(4, 6, 3).mean(axis=1), atol=1e-5)
    each = embed(encoder, clips, batch_size=5, average=False)
    assert each.shape == (4, 6, 3)
    assert np.allclose(each, per_clip.reshape(4, 6, 3), atol=1e-5)
    assert progress.started == [("embedding 4 videos x 6 clips", 24)]  # the bar counts clips
    assert progress.advanced == 24 and progress.finished == 1


def test_batch_sizes_one_and_all_give_the_same_rows_of_a_real_encoder(store):
    torch.manual_seed(0)
    encoder = Encoder("r3d_tiny", hidden_dim=16, out_dim=8)
    clips = EvaluationClips(store, np.arange(6), clip_length=4, stride=1, crop_size=16)
    one = embed(encoder, clips, batch_size=1)
    whole = embed(encoder, clips, batch_size=6)
    assert one.shape == (6, 8)
    assert np.allclose(one, whole, atol=1e-5)
    assert not np.allclose(one[0], one[1], atol=1e-3)  # the rows are the videos', not one row
    backbone = embed_clips(encoder, clips, feature="backbone", batch_size=3, workers=0,
                           compute=CPU, progress=SilentProgress())
    assert backbone.shape == (6, encoder.backbone.feature_dim)


def test_the_encoder_runs_in_eval_mode_and_gets_its_mode_back(store):
    clips = EvaluationClips(store, np.arange(3), clip_length=2, stride=1, crop_size=8)
    encoder = ChannelMeans()
    encoder.train()
    embed(encoder, clips, batch_size=2)
    assert encoder.modes == [False, False] and encoder.training
    encoder.eval()
    embed(encoder, clips, batch_size=2)
    assert not encoder.training


def test_autograd_records_nothing_while_embedding(store):
    clips = EvaluationClips(store, np.arange(3), clip_length=2, stride=1, crop_size=8)
    encoder = ChannelMeans()
    assert torch.is_grad_enabled()
    features = embed(encoder, clips, batch_size=2)
    assert encoder.recording == [False, False] and torch.is_grad_enabled()
    assert isinstance(features, np.ndarray)


class LinearEmbedding(nn.Module):
    """embed -> (B, 8): a linear map of the flattened clip, whose float32 result bf16
    autocast rounds."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(inputs, 8)

    def embed(self, clips: torch.Tensor, feature: str = "projection") -> torch.Tensor:
        return self.fc(clips.flatten(1))


def test_embedding_passes_run_in_float32_unless_asked_otherwise(store):
    """Under compute.amp bf16, the passes that feed clustering and kNN recall stay float32
    (compute.embedding_precision fp32, the default); `amp` or a classifier's pass
    (amp=True) run under autocast."""
    clips = EvaluationClips(store, np.arange(4), 4, 1, 16)
    torch.manual_seed(0)
    encoder = LinearEmbedding(int(np.prod(clips[0][0].shape)))
    bf16 = Compute(torch.device("cpu"), "bf16", torch.contiguous_format)
    exact = embed_clips(encoder, clips, feature="projection", batch_size=2, workers=0,
                        compute=CPU, progress=SilentProgress())

    def with_compute(compute, **kwargs):
        return embed_clips(encoder, clips, feature="projection", batch_size=2, workers=0,
                           compute=compute, progress=SilentProgress(), **kwargs)

    assert bf16.embedding_precision == "fp32"
    assert np.array_equal(with_compute(bf16), exact)
    for rounded in (with_compute(bf16, amp=True),
                    with_compute(replace(bf16, embedding_precision="amp"))):
        assert not np.array_equal(rounded, exact)
        assert np.allclose(rounded, exact, rtol=0.05, atol=0.05)


class Broken(ChannelMeans):
    """An encoder that fails on its first batch."""

    def embed(self, clips: torch.Tensor, feature: str = "projection") -> torch.Tensor:
        raise RuntimeError("broken encoder")


def test_an_embedding_pass_that_fails_leaves_no_loader_worker_behind(
        store: ClipStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed pass's frames stay referenced by the traceback: only the pass's own cleanup
    can stop its workers before the collector (which waits 5 s a worker) would."""
    import gc
    import multiprocessing

    import stages.training.embedding as embedding

    monkeypatch.setattr(embedding, "inference_workers", lambda setting, device: 2)
    clips = EvaluationClips(store, np.arange(4), clip_length=4, stride=2, crop_size=16,
                            windows=1, crops=1)
    gc.collect()
    before = set(multiprocessing.active_children())
    gc.disable()
    try:
        with pytest.raises(RuntimeError, match="broken encoder") as failed:
            embed(Broken(), clips, batch_size=2)
        assert failed.traceback  # still held here
        assert set(multiprocessing.active_children()) == before
    finally:
        gc.enable()
