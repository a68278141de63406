import numpy as np
import pytest
import torch

from stages.clips.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    STRETCH_MAX_GAIN,
    STRETCH_TARGET_LEVELS,
    AugmentSettings,
    ClipAugmentation,
    augment_clip,
    centre_crop_clip,
    draw_augmentation,
    negate_flow,
    stretch_flow_view,
)
from stages.flow.methods import dequantise_flow


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


def _stored(clip: torch.Tensor) -> np.ndarray:
    """(3, T, S, S) normalised gray clip -> (T, S, S) uint8 values, from its first channel."""
    return (_unnormalise(clip)[0] * 255).round().to(torch.uint8).numpy()


def _flow_planes() -> np.ndarray:
    """(2, 8, 8) stored flow: u = 160 (rightward motion) on the left half, 128 elsewhere."""
    planes = np.full((2, 8, 8), 128, dtype=np.uint8)
    planes[:, :, :4] = 160
    return planes


def test_negated_flow_is_the_exact_opposite_motion():
    stored = np.arange(256, dtype=np.uint8)
    assert np.allclose(dequantise_flow(negate_flow(stored), 20.0),
                       -dequantise_flow(stored, 20.0), atol=1e-5)
    assert negate_flow(np.uint8(160)) == 95


def test_flip_mirrors_and_negates_u_only():
    planes = _flow_planes()
    flipped = ClipAugmentation((0, 0, 8, 8), True, (), False, False)
    u = _stored(augment_clip(planes, flipped, 8, flow="u"))
    assert (u[:, :, 4:] == 95).all() and (u[:, :, :4] == 127).all()
    for channel in ("v", "magnitude"):
        values = _stored(augment_clip(planes, flipped, 8, flow=channel))
        assert np.array_equal(values, planes[:, :, ::-1]), channel


def test_flip_of_a_uvm_view_negates_its_u_channel_only():
    planes = _flow_planes()
    uvm = np.stack([planes, planes, planes], axis=-1)  # (T, H, W, 3): u, v, magnitude
    flipped = ClipAugmentation((0, 0, 8, 8), True, (), False, False)
    out = (_unnormalise(augment_clip(uvm, flipped, 8, flow="uvm")) * 255).round()
    channels = out.to(torch.uint8).numpy()  # (3, T, S, S)
    assert (channels[0][:, :, 4:] == 95).all() and (channels[0][:, :, :4] == 127).all()
    for kept in (1, 2):
        assert np.array_equal(channels[kept], planes[:, :, ::-1]), kept


def test_stretch_brings_slow_motion_to_the_target_contrast():
    planes = _flow_planes()  # u 160 (32.5 levels of motion) on the left half, 128 elsewhere
    stretched = stretch_flow_view(planes, "u")
    gain = STRETCH_TARGET_LEVELS / 32.5
    assert stretched.dtype == np.uint8 and stretched.shape == planes.shape
    assert (stretched[:, :, :4] == np.rint(127.5 + STRETCH_TARGET_LEVELS)).all()
    assert (stretched[:, :, 4:] == np.rint(127.5 + 0.5 * gain)).all()
    mirrored = stretch_flow_view(negate_flow(planes), "u")  # the same motion, leftwards
    assert (mirrored[:, :, :4] == np.rint(127.5 - STRETCH_TARGET_LEVELS)).all()


def test_stretch_keeps_fast_motion_and_caps_the_gain_of_still_clips():
    fast = np.full((2, 8, 8), 250, dtype=np.uint8)
    assert np.array_equal(stretch_flow_view(fast, "u"), fast)  # gain stays 1
    still = np.full((2, 8, 8), 129, dtype=np.uint8)  # 1.5 levels: estimation noise
    assert (stretch_flow_view(still, "u") == round(127.5 + 1.5 * STRETCH_MAX_GAIN)).all()


def test_stretch_of_uvm_uses_one_gain_and_zero_magnitude_at_zero():
    u = np.full((2, 8, 8), 127, dtype=np.uint8)
    u[:, :, :4] = 143  # 15.5 levels
    v = np.full((2, 8, 8), 127, dtype=np.uint8)
    v[:, :, :4] = 111  # -16.5 levels: the percentile takes the larger
    magnitude = np.zeros((2, 8, 8), dtype=np.uint8)
    magnitude[:, :, :4] = 20
    stretched = stretch_flow_view(np.stack([u, v, magnitude], axis=-1), "uvm")
    gain = STRETCH_TARGET_LEVELS / 16.5
    assert (stretched[:, :, :4, 0] == round(127.5 + 15.5 * gain)).all()
    assert (stretched[:, :, :4, 1] == round(127.5 - 16.5 * gain)).all()
    assert (stretched[:, :, :4, 2] == round(20 * gain)).all()
    assert (stretched[:, :, 4:, 2] == 0).all()


def test_colour_operations_leave_consistent_flow_alone():
    planes = _flow_planes()
    plain = ClipAugmentation((0, 0, 8, 8), False, (), False, False)
    coloured = ClipAugmentation((0, 0, 8, 8), False, ((0, 1.5), (1, 0.5), (3, 0.3)), True, True)
    out = augment_clip(planes, coloured, 8, flow="u")
    assert torch.equal(out, augment_clip(planes, plain, 8, flow="u"))
    assert np.array_equal(_stored(out), planes)


def test_official_flow_is_augmented_as_a_gray_image():
    planes = _flow_planes()
    flipped = ClipAugmentation((0, 0, 8, 8), True, (), False, False)
    u = _stored(augment_clip(planes, flipped, 8, flow="u", flow_augment="official"))
    assert np.array_equal(u, planes[:, :, ::-1])  # mirrored, u not negated
    brighter = ClipAugmentation((0, 0, 8, 8), False, ((0, 1.5),), False, False)
    u = _stored(augment_clip(planes, brighter, 8, flow="u", flow_augment="official"))
    assert (u[:, :, 4:] == 192).all()  # zero motion no longer reads zero


def test_unknown_flow_augment_mode_is_refused():
    with pytest.raises(ValueError, match="flow_augment"):
        AugmentSettings(flow_augment="mirror")


def test_centre_crop_resizes_the_short_side():
    frames = np.zeros((2, 30, 60, 3), dtype=np.uint8)
    frames[:, :, 25:35] = 255  # a bright column in the middle
    out = _unnormalise(centre_crop_clip(frames, 20))
    assert out.shape == (3, 2, 20, 20)
    assert out[:, :, :, 10].min() > 0.9 and out[:, :, :, 0].max() < 0.1


def test_blur_works_for_long_clips_and_equals_blurring_each_frame():
    import cv2

    from stages.clips.augment import BLUR_KERNEL, BLUR_SIGMA, blur_clip

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (64, 24, 24, 3), dtype=np.uint8)  # 192 channels at once
    blurred = blur_clip(clip)
    each = np.stack([cv2.GaussianBlur(f, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA) for f in clip])
    assert blurred.shape == clip.shape and np.array_equal(blurred, each)
