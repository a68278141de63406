import cv2
import numpy as np

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
        if moving.sum() < 5:
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


def test_classes_are_told_apart_by_motion():
    names = list(MOTIONS)
    u, v, _ = mean_flow(render_video(SETTINGS, names.index("TranslateRight"), 2, 1))
    assert u > 0.3 and abs(v) < u
    u, v, _ = mean_flow(render_video(SETTINGS, names.index("TranslateUp"), 2, 1))
    assert v < -0.3 and abs(u) < -v
    _, _, radial_grow = mean_flow(render_video(SETTINGS, names.index("Grow"), 2, 1))
    _, _, radial_shrink = mean_flow(render_video(SETTINGS, names.index("Shrink"), 2, 1))
    assert radial_grow > 0 > radial_shrink


def test_every_video_has_its_own_background():
    first_frames = [render_video(SETTINGS, c, g, k)[0] for c in range(4) for g in (1, 2)
                    for k in (1, 2)]
    corners = {f[:8, :8].tobytes() for f in first_frames}
    assert len(corners) == len(first_frames)


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
