"""Helpers for tests: comparing artifacts, building datasets with bad videos, tiny frames.h5."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from stages.datasets.base import TEST, TRAIN
from stages.io.artifacts import (
    KIND_FRAMES,
    ImageStreamWriter,
    Provenance,
    VideoTable,
    write_artifact,
    write_failures,
    write_provenance,
    write_video_table,
)
from stages.io.images import encode_image
from stages.io.staging import pack_images
from stages.io.video import write_video


def artifact_contents(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an artifact except its provenance (which holds times)."""
    contents: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        def visit(name: str, item) -> None:
            if isinstance(item, h5py.Dataset) and name != "provenance":
                contents[name] = item[()]
        h5.visititems(visit)
        contents["@attrs"] = np.array(sorted((k, str(v)) for k, v in h5.attrs.items()))
    return contents


def assert_same_contents(first: Path, second: Path) -> None:
    a, b = artifact_contents(first), artifact_contents(second)
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name} differs"


def copy_with_bad_videos(source: Path, target: Path) -> dict[str, str]:
    """Copy a synthetic dataset and add broken videos to its train list.

    Returns relpath -> a word the failure reason must contain.
    """
    shutil.copytree(source, target)
    folder = target / "Rise"
    (folder / "v_Rise_g09_c01.avi").write_bytes(b"")
    (folder / "v_Rise_g09_c02.avi").write_bytes(b"RIFF not really an avi" * 40)
    write_video(folder / "v_Rise_g09_c03.avi", np.zeros((1, 32, 32, 3), np.uint8), fps=25)
    good = (folder / "v_Rise_g02_c01.avi").read_bytes()
    (folder / "v_Rise_g09_c04 with space.avi").write_bytes(good[: len(good) // 3])
    lists = target / "ucfTrainTestlist" / "trainlist01.txt"
    extra = [f"Rise/v_Rise_g09_c0{i}.avi 2" for i in (1, 2, 3)]
    extra.append("Rise/v_Rise_g09_c04 with space.avi 2")
    lists.write_text(lists.read_text() + "\n".join(extra) + "\n")
    return {"Rise/v_Rise_g09_c01.avi": "ffmpeg",
            "Rise/v_Rise_g09_c02.avi": "ffmpeg",
            "Rise/v_Rise_g09_c03.avi": "too short"}


@dataclass
class TinyVideo:
    """One video of a frames.h5 written by `write_frames`: (T, H, W, 3) uint8 frames."""

    name: str
    label: int
    frames: np.ndarray
    test: bool = False


def write_frames(path: Path, videos: list[TinyVideo], class_names: list[str],
                 fingerprint: str = "tests", codec: str = "raw") -> Path:
    """A frames.h5 of `videos` (frames stored with `codec`, one split named 1), written in
    milliseconds through the artifact module: no video file is encoded or decoded."""
    rows, memberships = [], []
    with write_artifact(path, KIND_FRAMES, fingerprint) as h5:
        digest = hashlib.blake2b(digest_size=16)
        stream = ImageStreamWriter(h5, "images", codec, 3, digest)
        for video in videos:
            count, height, width = video.frames.shape[:3]
            first = stream.append(*pack_images([encode_image(f, codec) for f in video.frames]))
            class_name = class_names[video.label]
            rows.append({"video_id": video.name, "relpath": f"{class_name}/{video.name}.avi",
                         "class_name": class_name, "label": video.label, "frame_count": count,
                         "fps": 25.0, "src_fps": 25.0, "src_width": width, "src_height": height,
                         "width": width, "height": height, "file_size": 0, "checksum": "",
                         "first_image": first, "num_images": count})
            memberships.append((TEST if video.test else TRAIN,))
        write_video_table(h5, VideoTable.from_rows(rows, class_names, ["1"], memberships))
        write_failures(h5, [], [])
        h5.attrs["content_digest"] = digest.hexdigest()
        write_provenance(h5, Provenance("tests", {}, "test", [], "0"))
    return path


def write_tiny_frames(path: Path, frame_counts: tuple[int, ...] = (12, 9, 16, 6, 20, 11, 14, 8),
                      num_classes: int = 2, height: int = 24, width: int = 32,
                      seed: int = 0, ramp: bool = False) -> Path:
    """A frames.h5 of random frames.

    Video i is `v{i}` of class i % num_classes; every fourth video (i % 4 == 3) is a test video
    of split 1, the others train. Frame t of video i is drawn from a generator seeded by
    (seed, i), so two files written with the same arguments hold the same pixels; with `ramp`
    it is flat gray of level 10 + 8 t instead (at most 30 frames), so a clip shows its frames.
    """
    videos = []
    for index, count in enumerate(frame_counts):
        rng = np.random.default_rng([seed, index])
        frames = rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
        if ramp:
            levels = 10 + 8 * np.arange(count, dtype=np.uint8)
            frames = np.broadcast_to(levels[:, None, None, None], frames.shape).copy()
        videos.append(TinyVideo(f"v{index}", index % num_classes, frames, index % 4 == 3))
    return write_frames(path, videos, [f"Class{c}" for c in range(num_classes)], f"tiny-{seed}")
