import cv2
import numpy as np
import pytest

from stages.make_dataset import MakeDatasetConfig, render_video
from stages.synthetic.motion import MOTIONS

SETTINGS = MakeDatasetConfig(min_seconds=1.0, max_seconds=1.0, seed=11)


def mean_flow(frames: np.ndarray) -> tuple[float, float, float]:
    """Mean u, v and divergence-like radial flow of the moving pixels of a video."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    sums = np.zeros(3)
    for previous, current in zip(frames[:-1], frames[1:]):
        a, b = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (previous, current))
        flow = dis.calc(a, b, None)
        moving = np.abs(a.astype(int) - b.astype(int)) > 10
        if moving.sum() < 5 or moving.mean() > 0.5:  # no motion, or a cut between shots
            continue
        ys, xs = np.nonzero(moving)
        u, v = flow[ys, xs, 0], flow[ys, xs, 1]
        cx, cy = xs.mean(), ys.mean()
        radial = ((xs - cx) * u + (ys - cy) * v) / (np.hypot(xs - cx, ys - cy) + 1e-6)
        sums += (u.mean(), v.mean(), radial.mean())
    return tuple(sums / (len(frames) - 1))


def test_same_seed_same_frames_other_seed_other_frames():
    first = render_video(SETTINGS, 0, 1, 1)
    assert np.array_equal(first, render_video(SETTINGS, 0, 1, 1))
    other = MakeDatasetConfig(min_seconds=1.0, max_seconds=1.0, seed=12)
    assert not np.array_equal(first[0], render_video(other, 0, 1, 1)[0])


@pytest.mark.slow
def test_classes_are_told_apart_by_motion():
    names = list(MOTIONS)
    for clip in (1, 2, 3):
        u, v, _ = mean_flow(render_video(SETTINGS, names.index("Slide"), 2, clip))
        assert abs(u) > 0.3 and abs(v) < abs(u)
        u, v, _ = mean_flow(render_video(SETTINGS, names.index("Rise"), 2, clip))
        assert v < -0.3 and abs(u) < -v
        u, v, _ = mean_flow(render_video(SETTINGS, names.index("Fall"), 2, clip))
        assert v > 0.3 and abs(u) < v
        _, _, radial_grow = mean_flow(render_video(SETTINGS, names.index("Grow"), 2, clip))
        _, _, radial_shrink = mean_flow(render_video(SETTINGS, names.index("Shrink"), 2, clip))
        assert radial_grow > 0 > radial_shrink


def test_slides_go_both_ways_so_a_mirror_keeps_the_class():
    names = list(MOTIONS)
    directions = {np.sign(mean_flow(render_video(SETTINGS, names.index("Slide"), g, c))[0])
                  for g in (1, 2, 3) for c in (1, 2)}
    assert directions == {-1.0, 1.0}


def test_every_shot_draws_a_new_look_and_one_shot_keeps_it():
    def corner_changes(settings: MakeDatasetConfig) -> int:
        frames = render_video(settings, 0, 1, 1)
        corners = frames[:, :6, :6].reshape(len(frames), -1).astype(int)
        return int((np.abs(np.diff(corners, axis=0)).max(axis=1) > 0).sum())

    shots = MakeDatasetConfig(min_seconds=2.0, max_seconds=2.0, min_shot_seconds=0.5,
                              max_shot_seconds=0.5, seed=11)
    assert corner_changes(shots) == 4  # 50 frames in shots of 12 (0.5 s at 25 fps): 4 cuts
    one_shot = MakeDatasetConfig(min_seconds=2.0, max_seconds=2.0, min_shot_seconds=3.0,
                                 max_shot_seconds=3.0, seed=11)
    assert corner_changes(one_shot) == 0


def test_every_video_has_its_own_background():
    first_frames = [render_video(SETTINGS, c, g, k)[0] for c in range(4) for g in (1, 2)
                    for k in (1, 2)]
    corners = {f[:8, :8].tobytes() for f in first_frames}
    assert len(corners) == len(first_frames)


def test_shared_group_look_repeats_the_look_within_a_group_only():
    from dataclasses import replace
    shared = replace(SETTINGS, group_look="shared", min_seconds=0.6, max_seconds=1.4)
    first, second = render_video(shared, 0, 1, 1), render_video(shared, 0, 1, 2)
    assert first.shape[1:] == second.shape[1:]  # one frame size for the group
    assert len(first) != len(second)  # each video draws its own length
    assert np.array_equal(first[0, :8, :8], second[0, :8, :8])  # the group's background
    assert not np.array_equal(first[0], second[0])  # its own start pose
    other_group = render_video(shared, 0, 2, 1)
    assert not np.array_equal(first[0, :8, :8], other_group[0, :8, :8])


@pytest.mark.slow
def test_written_dataset_splits_by_group_and_is_cached(synthetic_root):
    from stages.make_dataset import run
    from tests.conftest import SMALL

    lists = synthetic_root / "ucfTrainTestlist"
    train = [line.split()[0] for line in (lists / "trainlist01.txt").read_text().splitlines()]
    test = (lists / "testlist01.txt").read_text().splitlines()
    assert len(train) == 16 and len(test) == 8
    assert {p.split("_g")[1][:2] for p in test} == {"01"}
    assert "01" not in {p.split("_g")[1][:2] for p in train}
    assert all((synthetic_root / p).stat().st_size > 1000 for p in train + test)
    before = (synthetic_root / train[0]).stat().st_mtime_ns
    assert run(SMALL, synthetic_root).status == "up to date"
    assert (synthetic_root / train[0]).stat().st_mtime_ns == before


def test_objects_take_their_class_shape_at_the_set_probability():
    from stages.synthetic.appearance import SHAPES, _polygon, video_object

    def shares_of_own_shape(probability: float, class_index: int) -> float:
        rng = np.random.default_rng(5)
        own = _polygon(SHAPES[class_index])
        return np.mean([np.array_equal(video_object(rng, 120, 160, class_index,
                                                    probability).polygon, own)
                        for _ in range(400)])

    assert shares_of_own_shape(1.0, 3) == 1.0
    assert 0.35 < shares_of_own_shape(0.4, 3) < 0.65  # 0.4 + 0.6 / 8 = 0.475 expected
    assert shares_of_own_shape(0.0, 3) < 0.25  # a random shape: 1 / 8 expected


def test_a_shot_keeps_the_videos_object_on_a_new_background():
    from stages.synthetic.appearance import shot_appearance, video_object

    rng = np.random.default_rng(2)
    subject = video_object(rng, 120, 160, 0, 1.0)
    first, second = (shot_appearance(rng, subject, 120, 160) for _ in range(2))
    assert first.texture is second.texture and first.radius == second.radius
    assert not np.array_equal(first.background, second.background)
