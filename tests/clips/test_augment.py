import numpy as np
import pytest
import torch

from stages.clips.augment import (
    STRETCH_MAX_GAIN,
    STRETCH_TARGET_LEVELS,
    AugmentSettings,
    ClipAugmentation,
    augment_clip,
    centre_crop_clip,
    draw_augmentation,
    negate_flow,
    normalise_clips,
    stretch_flow_view,
    stretch_gain,
)
from stages.flow.methods import dequantise_flow


def _unnormalise(clip: torch.Tensor) -> torch.Tensor:
    """A uint8 clip's levels as 0..1."""
    return clip.float() / 255


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
    with pytest.raises(ValueError, match="flow_augment is 'mirror'; use one of consistent, "
                                         "official"):
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


def test_stretch_of_a_magnitude_view_keeps_zero_motion_at_level_zero():
    """Magnitude has no sign: level 0 is no motion, and the gain scales away from it."""
    magnitude = np.zeros((2, 8, 8), dtype=np.uint8)
    magnitude[:, :, :4] = 24  # 24 levels of speed: gain 96 / 24 = 4
    assert stretch_gain(magnitude, "magnitude") == pytest.approx(4.0)
    stretched = stretch_flow_view(magnitude, "magnitude")
    assert (stretched[:, :, :4] == 96).all() and (stretched[:, :, 4:] == 0).all()


def test_stretch_ignores_the_fastest_percent_and_saturates_it():
    """The gain comes from the 99th percentile of motion over the whole view (every pixel,
    not some columns); the two fastest pixels of 400 are left out of it and clip at 0 and 255
    after the stretch instead of wrapping around."""
    u = np.full((4, 10, 10), 110, dtype=np.uint8)  # 17.5 levels leftwards
    u[:, :, 5:] = 100  # 27.5 levels leftwards: the 99th percentile
    u[0, 0, 9], u[3, 9, 9] = 0, 255  # the fastest 2 pixels, both ways
    gain = STRETCH_TARGET_LEVELS / 27.5
    assert stretch_gain(u, "u") == pytest.approx(gain)
    stretched = stretch_flow_view(u, "u").astype(int)
    assert (stretched[:, :, :5] == round(127.5 - 17.5 * gain)).all()
    assert (np.abs(stretched[1:3, :, 5:] - (127.5 - 27.5 * gain)) <= 0.5).all()
    assert stretched[0, 0, 9] == 0 and stretched[3, 9, 9] == 255


def test_draw_probabilities_match_the_settings():
    """Over 1500 draws: flip half the time, jitter, grayscale and blur at their probabilities
    (binomial standard deviation under 0.013, so 0.045 is a wide margin)."""
    rng = np.random.default_rng(7)
    settings = AugmentSettings(jitter_probability=0.8, grayscale_probability=0.2,
                               blur_probability=0.35)
    draws = [draw_augmentation(40, 50, settings, rng) for _ in range(1500)]
    assert np.mean([d.flip for d in draws]) == pytest.approx(0.5, abs=0.045)
    assert np.mean([bool(d.jitter) for d in draws]) == pytest.approx(0.8, abs=0.045)
    assert np.mean([d.grayscale for d in draws]) == pytest.approx(0.2, abs=0.045)
    assert np.mean([d.blur for d in draws]) == pytest.approx(0.35, abs=0.045)
    never = AugmentSettings(jitter_probability=0.0, grayscale_probability=0.0,
                            blur_probability=0.0)
    always = AugmentSettings(jitter_probability=1.0, grayscale_probability=1.0,
                             blur_probability=1.0)
    for _ in range(20):
        none, every = draw_augmentation(40, 50, never, rng), draw_augmentation(40, 50, always, rng)
        assert none.jitter == () and not none.grayscale and not none.blur
        assert len(every.jitter) == 4 and every.grayscale and every.blur


def test_jitter_draws_each_operation_once_in_random_order_with_its_own_range():
    """Brightness, contrast and saturation factors lie in [1 - s, 1 + s] (never below 0), the
    hue shift in [-h, h]; the four operations come in every order; a strength of 0 drops its
    operations."""
    rng = np.random.default_rng(8)
    settings = AugmentSettings(jitter=0.2, hue=0.45, jitter_probability=1.0)
    factors: dict[int, list[float]] = {0: [], 1: [], 2: [], 3: []}
    orders = set()
    for _ in range(300):
        jitter = draw_augmentation(40, 50, settings, rng).jitter
        orders.add(tuple(op for op, _ in jitter))
        for op, factor in jitter:
            factors[op].append(factor)
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders) and len(orders) == 24
    for op in (0, 1, 2):
        assert 0.8 <= min(factors[op]) < 0.82 and 1.18 < max(factors[op]) <= 1.2, op
    assert -0.45 <= min(factors[3]) < -0.42 and 0.42 < max(factors[3]) <= 0.45
    strong = AugmentSettings(jitter=1.5, hue=0.0, jitter_probability=1.0)
    draws = [draw_augmentation(40, 50, strong, rng).jitter for _ in range(150)]
    assert all(sorted(op for op, _ in d) == [0, 1, 2] for d in draws)  # hue 0: no hue op
    values = [factor for d in draws for _, factor in d]
    assert min(values) >= 0.0 and min(values) < 0.05 and max(values) > 2.4
    hue_only = AugmentSettings(jitter=0.0, hue=0.1, jitter_probability=1.0)
    assert {tuple(op for op, _ in draw_augmentation(40, 50, hue_only, rng).jitter)
            for _ in range(20)} == {(3,)}


def _apply(frames: np.ndarray, jitter=(), grayscale: bool = False, blur: bool = False
           ) -> np.ndarray:
    """Colour operations alone (full-frame box, no flip) on (T, S, S, 3) frames, back to
    (T, S, S, 3) levels."""
    size = frames.shape[1]
    augmentation = ClipAugmentation((0, 0, size, size), False, tuple(jitter), grayscale, blur)
    levels = (_unnormalise(augment_clip(frames, augmentation, size)) * 255).round()
    return levels.to(torch.int64).permute(1, 2, 3, 0).numpy()


def _halves(left: tuple[int, int, int], right: tuple[int, int, int], size: int = 4
            ) -> np.ndarray:
    frame = np.zeros((size, size, 3), np.uint8)
    frame[:, :size // 2], frame[:, size // 2:] = left, right
    return frame


def test_brightness_scales_every_level_and_saturates():
    frames = np.stack([np.full((4, 4, 3), 100, np.uint8), np.full((4, 4, 3), 200, np.uint8)])
    out = _apply(frames, [(0, 1.5)])
    assert (out[0] == 150).all() and (out[1] == 255).all()


def test_contrast_moves_each_frame_towards_or_away_from_its_own_mean_gray():
    """Frame 0 is 100 | 200 (mean 150), frame 1 is 20 | 60 (mean 40)."""
    frames = np.stack([_halves((100,) * 3, (200,) * 3), _halves((20,) * 3, (60,) * 3)])
    low = _apply(frames, [(1, 0.5)])
    assert (low[0, :, :2] == 125).all() and (low[0, :, 2:] == 175).all()
    assert (low[1, :, :2] == 30).all() and (low[1, :, 2:] == 50).all()
    high = _apply(frames, [(1, 2.0)])
    assert (high[0, :, :2] == 50).all() and (high[0, :, 2:] == 250).all()
    assert (high[1, :, :2] == 0).all() and (high[1, :, 2:] == 80).all()


def test_saturation_blends_with_the_gray_image():
    """(200, 100, 50) has gray 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2 (ITU-R 601)."""
    frames = np.stack([np.full((4, 4, 3), (200, 100, 50), np.uint8)] * 2)
    assert (_apply(frames, [(2, 0.5)]) == (162, 112, 87)).all()
    assert (_apply(frames, [(2, 0.0)]) == 124).all()
    assert (_apply(frames, [(2, 2.0)]) == (255, 76, 0)).all()
    assert (_apply(frames, grayscale=True) == 124).all()


def test_hue_turns_colours_around_the_circle():
    """A shift of 0.5 is half the circle (red -> cyan, green -> magenta); -0.25 is a quarter
    back (red -> violet)."""
    frames = np.stack([_halves((255, 0, 0), (0, 255, 0))] * 2)
    half = _apply(frames, [(3, 0.5)])
    assert (np.abs(half[:, :, :2] - (0, 255, 255)) <= 4).all()  # 8-bit hue steps
    assert (np.abs(half[:, :, 2:] - (255, 0, 255)) <= 4).all()
    back = _apply(frames, [(3, -0.25)])
    assert (np.abs(back[:, :, :2] - (128, 0, 255)) <= 4).all()
    for turn in (1.0, -1.0):  # a full turn, either way, is no change
        assert np.array_equal(_apply(frames, [(3, turn)]), frames.astype(np.int64))


def test_colour_operations_run_in_the_drawn_order_then_grayscale_then_blur():
    """Brightness 1.5 then saturation 0 grays (255, 150, 75) to 173; the other order grays
    first (124) and brightens to 186. Grayscale follows the jitter, and blur comes last."""
    frames = np.stack([np.full((4, 4, 3), (200, 100, 50), np.uint8)] * 2)
    assert (_apply(frames, [(0, 1.5), (2, 0.0)]) == 173).all()
    assert (_apply(frames, [(2, 0.0), (0, 1.5)]) == 186).all()
    assert (_apply(frames, [(0, 1.5)], grayscale=True) == 173).all()
    import cv2

    from stages.clips.augment import BLUR_KERNEL, BLUR_SIGMA

    edge = np.stack([_halves((0, 0, 0), (250, 250, 250), size=16)] * 2)
    blurred = _apply(edge, [(0, 0.5)], blur=True)
    darker = cv2.convertScaleAbs(edge[0], alpha=0.5)
    expected = cv2.GaussianBlur(darker, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
    assert np.array_equal(blurred[0], expected) and np.array_equal(blurred[1], expected)
    assert 0 < blurred[0, 0, 7, 0] < 125 and 0 < blurred[0, 0, 8, 0] < 125


def test_a_frame_too_elongated_for_any_crop_falls_back_to_the_centre_square():
    """On a 4 x 200 frame every box of a quarter of the area or more is at least 12 px high:
    all ten tries fail, and the crop is the centred 4 x 4 square (torchvision's fallback)."""
    rng = np.random.default_rng(0)
    settings = AugmentSettings(min_crop_area=0.25)
    for _ in range(5):
        assert draw_augmentation(4, 200, settings, rng).box == (0, 98, 4, 4)
        assert draw_augmentation(201, 4, settings, rng).box == (98, 0, 4, 4)


def test_crop_boxes_reach_every_edge_and_span_their_area_and_ratio_ranges():
    rng = np.random.default_rng(1)
    boxes = [draw_augmentation(60, 80, AugmentSettings(min_crop_area=0.25), rng).box
             for _ in range(400)]
    tops, lefts, heights, widths = (np.array(values) for values in zip(*boxes))
    assert (tops == 0).any() and (tops + heights == 60).any()
    assert (lefts == 0).any() and (lefts + widths == 80).any()
    areas, ratios = heights * widths / (60 * 80), widths / heights
    assert areas.min() < 0.3 and areas.max() > 0.9
    assert ratios.min() < 0.8 and ratios.max() > 1.25


def test_the_box_is_cut_from_the_frame_and_resized_to_the_square():
    """Box (top 2, left 3, height 4, width 8) resized to 4 x 4: rows kept, columns halved, so
    output column c shows source column 3 + 2c + 0.5; red = 10 x column, green = 20 x row."""
    frames = np.zeros((2, 8, 12, 3), np.uint8)
    frames[..., 0] = 10 * np.arange(12)
    frames[..., 1] = 20 * np.arange(8)[:, None]
    box = ClipAugmentation((2, 3, 4, 8), False, (), False, False)
    out = (_unnormalise(augment_clip(frames, box, 4)) * 255).round().numpy()
    rows, columns = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    assert (np.abs(out[0] - 10 * (3 + 2 * columns + 0.5)) <= 1).all()
    assert (out[1] == 20 * (2 + rows)).all()


def test_normalisation_is_imagenet_per_channel_and_keeps_the_frame_order():
    frames = np.zeros((2, 2, 2, 3), np.uint8)
    frames[0], frames[1] = (255, 0, 128), (0, 255, 51)
    plain = ClipAugmentation((0, 0, 2, 2), False, (), False, False)
    out = augment_clip(frames, plain, 2)
    assert out.shape == (3, 2, 2, 2) and out.dtype == torch.uint8  # workers ship uint8
    normalised = normalise_clips(out)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    for t in range(2):
        assert out[:, t].reshape(3, -1).tolist() == [[v] * 4 for v in frames[t, 0, 0]], t
        expected = (frames[t, 0, 0] / 255 - mean) / std
        assert np.allclose(normalised[:, t].reshape(3, -1).numpy(), expected[:, None],
                           atol=1e-5), t


def test_a_crop_that_cannot_fit_the_ratio_falls_back_to_the_centre_square():
    """A 4 x 400 frame fits no crop of ratio 3/4..4/3 and a quarter of its area: every try
    fails and the box is the centre 4 x 4 square, in whole pixels."""
    from stages.clips.augment import _random_resized_crop

    box = _random_resized_crop(4, 400, 0.25, np.random.default_rng(0))
    assert box == (0, 198, 4, 4) and all(isinstance(v, int) for v in box)


def test_gray_frames_augment_as_their_three_channel_copy():
    from stages.clips.augment import AugmentSettings, augment_clip, draw_augmentation

    gray = np.random.default_rng(1).integers(0, 256, (3, 20, 24), dtype=np.uint8)
    settings = AugmentSettings(crop_size=16)
    for seed in range(4):
        draw = draw_augmentation(20, 24, settings, np.random.default_rng(seed))
        assert torch.equal(augment_clip(gray, draw, 16),
                           augment_clip(np.repeat(gray[..., None], 3, axis=-1), draw, 16))


def test_a_consistent_uvm_flow_view_is_never_turned_gray():
    """u, v and magnitude stay three channels: the grayscale and colour draws of a clip do
    not apply to a consistent flow view."""
    from dataclasses import replace as changed

    from stages.clips.augment import (
        AugmentSettings,
        augment_clip,
        draw_augmentation,
    )

    uvm = np.zeros((2, 16, 16, 3), np.uint8)
    uvm[..., 0], uvm[..., 1], uvm[..., 2] = 100, 160, 40
    draw = changed(draw_augmentation(16, 16, AugmentSettings(crop_size=16),
                                     np.random.default_rng(0)), flip=False, grayscale=True)
    view = augment_clip(uvm, draw, 16, flow="uvm").float()
    assert [round(float(view[c].mean())) for c in range(3)] == [100, 160, 40]
