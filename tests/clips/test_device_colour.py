"""The colour operations on the device (`pretrain.colour_on: device`) against the loader's
OpenCV ones on the same draws: the same clips, within rounding."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from stages.clips.augment import AugmentSettings, ClipAugmentation, augment_clip, draw_augmentation
from stages.clips.device_colour import COLOUR_FIELDS, apply_colour, colour_parameters
from stages.clips.triplets import TripletClips
from stages.pretrain_config import PretrainConfig
from stages.slic_training import triplet_settings


def blocky_frames(rng: np.random.Generator) -> np.ndarray:
    """(4, 40, 50, 3) uint8 frames of 4 x 4 blocks of random colours (natural images are
    smooth; pure noise would make the blur's borders dominate)."""
    blocks = rng.integers(0, 256, (4, 10, 13, 3), dtype=np.uint8)
    return np.ascontiguousarray(blocks.repeat(4, axis=1).repeat(4, axis=2)[:, :40, :50])


def test_device_colour_gives_the_worker_clips_within_rounding():
    rng = np.random.default_rng(0)
    means, operations = [], set()
    for _ in range(40):
        frames = blocky_frames(rng)
        draw = draw_augmentation(40, 50, AugmentSettings(crop_size=32), rng)
        on_worker = augment_clip(frames, draw, 32)
        geometry = augment_clip(frames, draw, 32, colour=False)
        on_device = apply_colour(geometry[None], colour_parameters(draw)[None])[0]
        gap = (on_worker.int() - on_device.int()).abs().float()
        means.append(float(gap.mean()))
        assert float(gap.quantile(0.99)) <= 12, draw  # hue rounding, amplified by later ops
        operations |= {op for op, _ in draw.jitter}
        operations |= {name for name, drawn in (("gray", draw.grayscale), ("blur", draw.blur))
                       if drawn}
    assert operations == {0, 1, 2, 3, "gray", "blur"}  # every operation was compared
    assert np.mean(means) < 0.6


@pytest.mark.parametrize("operation, factor", [(0, 1.4), (1, 0.6), (2, 0.3), (3, 0.25)])
def test_each_jitter_operation_alone_matches_opencv(operation, factor):
    frames = blocky_frames(np.random.default_rng(operation))
    draw = ClipAugmentation((0, 0, 40, 50), False, ((operation, factor),), False, False)
    on_worker = augment_clip(frames, draw, 32)
    geometry = augment_clip(frames, draw, 32, colour=False)
    assert not torch.equal(on_worker, geometry)  # the operation changes the clip
    on_device = apply_colour(geometry[None], colour_parameters(draw)[None])[0]
    assert (on_worker.int() - on_device.int()).abs().max() <= (9 if operation == 3 else 1)


def test_a_clip_without_colour_draws_is_left_as_it_is():
    clips = torch.randint(0, 256, (3, 3, 2, 8, 8), dtype=torch.uint8)
    none = torch.stack([colour_parameters(None)] * 3)
    assert none.shape == (3, COLOUR_FIELDS)
    assert torch.equal(apply_colour(clips, none), clips)


def test_device_items_carry_the_draws_the_worker_items_applied(tiny_frames):
    from stages.clips.store import ClipStore

    store = ClipStore(tiny_frames)
    videos = np.arange(len(store.table))

    def items(colour_on: str) -> TripletClips:
        settings = triplet_settings(PretrainConfig(clip_length=4, crop_size=16,
                                                   multiview=False, colour_on=colour_on))
        return TripletClips(store, videos, settings, seed=1)

    worker, device = items("worker"), items("device")
    for key in [(0, 0), (2, 3), (5, 7)]:
        done, left = worker[key], device[key]
        assert "anchor_colour" not in done
        for view in ("anchor", "positive", "augmented"):
            finished = apply_colour(left[view][None], left[f"{view}_colour"][None])[0]
            gap = (finished.int() - done[view].int()).abs().float()
            assert float(gap.mean()) < 1.5, (key, view)


def test_auto_puts_the_colour_operations_on_the_gpu_only():
    auto = PretrainConfig(colour_on="auto")
    assert triplet_settings(auto, torch.device("cuda")).augment.colour_on == "device"
    assert triplet_settings(auto, torch.device("cpu")).augment.colour_on == "worker"
    assert triplet_settings(replace(auto, colour_on="device")).augment.colour_on == "device"
