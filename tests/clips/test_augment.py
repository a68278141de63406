import numpy as np
import torch

from stages.clips.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentSettings,
    ClipAugmentation,
    augment_clip,
    centre_crop_clip,
    draw_augmentation,
)


def _unnormalise(clip: torch.Tensor) -> torch.Tensor:
    return clip * IMAGENET_STD + IMAGENET_MEAN


def test_one_draw_is_shared_by_every_frame():
    rng = np.random.default_rng(0)
    frame = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    clip = np.stack([frame] * 6)
    settings = AugmentSettings(crop_size=24, jitter_probability=1.0, grayscale_probability=0.5,
                               blur_probability=0.5)
    for _ in range(20):
        out = augment_clip(clip, draw_augmentation(40, 50, settings, rng), 24)
        assert out.shape == (3, 6, 24, 24)
        assert torch.allclose(out[:, :1].expand_as(out), out, atol=1e-6)


def test_crop_boxes_respect_area_and_bounds():
    rng = np.random.default_rng(0)
    settings = AugmentSettings(min_crop_area=0.25)
    for _ in range(500):
        top, left, h, w = draw_augmentation(60, 80, settings, rng).box
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 80
        assert h * w >= 0.25 * 60 * 80 * 0.9  # rounding of the sides
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1 or (h, w) == (60, 60)


def test_flip_mirrors_and_flow_is_replicated_gray():
    frames = np.random.default_rng(2).integers(0, 256, (3, 16, 16), dtype=np.uint8)
    plain = ClipAugmentation((0, 0, 16, 16), False, (), False, False)
    flipped = ClipAugmentation((0, 0, 16, 16), True, (), False, False)
    a, b = augment_clip(frames, plain, 16), augment_clip(frames, flipped, 16)
    assert torch.allclose(a.flip(-1), b)
    pixels = _unnormalise(a)
    assert torch.allclose(pixels[0], pixels[1], atol=1e-6)
    assert torch.allclose(pixels[0], torch.from_numpy(frames).float() / 255, atol=1e-5)


def test_centre_crop_resizes_the_short_side():
    frames = np.zeros((2, 30, 60, 3), dtype=np.uint8)
    frames[:, :, 25:35] = 255  # a bright column in the middle
    out = _unnormalise(centre_crop_clip(frames, 20))
    assert out.shape == (3, 2, 20, 20)
    assert out[:, :, :, 10].min() > 0.9 and out[:, :, :, 0].max() < 0.1
