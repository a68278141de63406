"""make-dataset synthetic: real encoded videos in the UCF101 layout, classes defined by motion.

Videos are grouped like UCF101 (`v_<Class>_gXX_cYY.avi`); the first `test_groups` groups of
every class form the test split, so no test video shares a group with a training video. Every
video draws its own appearance in any case, so retrieval cannot work by matching backgrounds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.io.video import write_video
from stages.make_dataset_config import MakeDatasetConfig
from stages.runtime.context import RunContext
from stages.runtime.errors import SlicError
from stages.synthetic.appearance import shot_appearance, video_object
from stages.synthetic.motion import MOTIONS, draw_shot_motion, draw_video_motion

LIST_FOLDER = "ucfTrainTestlist"
MARKER = "slic-synthetic.json"  # written last: the settings a complete dataset was made with
# Written first: the folder is one make-dataset is making (so a killed run may go on in it).
MAKING_MARKER = ".slic-synthetic.making"


@dataclass
class MakeDatasetResult:
    """What make-dataset did: the dataset folder, its class names and its video counts."""

    output: Path
    class_names: list[str]
    status: str = "written"  # or "up to date"
    num_train: int = 0
    num_test: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `output`, `status`, `num_classes`, `num_videos`,
        `num_train`, `num_test` and `seconds`."""
        return {"stage": "make-dataset", "output": str(self.output), "status": self.status,
                "num_classes": len(self.class_names), "num_videos": self.num_train + self.num_test,
                "num_train": self.num_train, "num_test": self.num_test,
                "seconds": round(self.seconds, 3)}


def _shot_lengths(rng: np.random.Generator, num_frames: int, fps: float,
                  settings: MakeDatasetConfig) -> list[int]:
    """Frames per shot, drawn until the video is full (the last shot takes the rest)."""
    lengths: list[int] = []
    while sum(lengths) < num_frames:
        seconds = rng.uniform(settings.min_shot_seconds, settings.max_shot_seconds)
        lengths.append(min(max(2, int(round(seconds * fps))), num_frames - sum(lengths)))
    return lengths


def render_video(settings: MakeDatasetConfig, class_index: int, group: int,
                 clip: int) -> np.ndarray:
    """The (T, H, W, 3) uint8 frames of one video; depends only on the seed and its name.

    A video is a few shots of one object in one motion: the object (shape, texture, size),
    speed and direction hold for the whole video, while every shot draws a new background and
    start pose, so what the clips of one video share is the object and how it moves.
    """
    rng = np.random.default_rng([settings.seed, class_index, group, clip])
    # With group_look "independent" the look is drawn from the video's own generator, in the
    # same order as every other draw; with "shared" from the group's, so a group's videos
    # look alike and differ in length, start poses and (for several shots) shot lengths.
    look = (np.random.default_rng([settings.seed, class_index, group])
            if settings.group_look == "shared" else rng)
    height, width = (int(look.integers(settings.min_size // 2, settings.max_size // 2 + 1)) * 2
                     for _ in range(2))
    seconds = rng.uniform(settings.min_seconds, settings.max_seconds)
    num_frames = max(2, int(round(seconds * settings.fps)))
    motion = list(MOTIONS.values())[class_index]
    speed, direction = draw_video_motion(look)
    subject = video_object(look, height, width, class_index, settings.class_shape_probability)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    first = 0
    for length in _shot_lengths(rng, num_frames, settings.fps, settings):
        appearance = shot_appearance(look, subject, height, width)
        shot_seconds = (length - 1) / settings.fps
        parameters = draw_shot_motion(rng, height, width, speed, direction, shot_seconds,
                                      motion)
        for index in range(length):
            frames[first + index] = appearance.draw(*motion(index / settings.fps, parameters))
        first += length
    return frames


def run(settings: MakeDatasetConfig, out: Path, *, kind: str = "synthetic",
        context: RunContext | None = None, option: str = "--out") -> MakeDatasetResult:
    """Write a dataset of `kind` (a key of DATASET_MAKERS) to `out`; `option` is what the user
    chose `out` with (the demo's --workspace), for the messages."""
    if kind not in DATASET_MAKERS:
        raise SlicError(f"unknown dataset kind {kind!r}; the choices are "
                        f"{', '.join(DATASET_MAKERS)}")
    return DATASET_MAKERS[kind](settings, Path(out),
                                (context or RunContext()).running(make_dataset=settings),
                                option)


def _marked_settings(marker: Path) -> Any:
    """The settings a dataset's marker records (None when it is damaged: the folder is still
    slic's own, and is made again)."""
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def write_synthetic(settings: MakeDatasetConfig, out: Path, context: RunContext,
                    option: str = "--out") -> MakeDatasetResult:
    """Write the synthetic dataset to `out` (video files, classInd.txt,
    trainlist01/testlist01), or find it up to date; errors say to choose another `option`."""
    if (settings.min_size > settings.max_size or settings.min_seconds > settings.max_seconds
            or settings.min_shot_seconds > settings.max_shot_seconds):
        raise SlicError("make_dataset: min_size/min_seconds/min_shot_seconds must not exceed "
                        "max_size/max_seconds/max_shot_seconds")
    if settings.test_groups >= settings.groups_per_class:
        raise SlicError("make_dataset.test_groups must be smaller than groups_per_class")
    started = time.perf_counter()
    class_names = list(MOTIONS)[: settings.num_classes]
    result = MakeDatasetResult(Path(out), class_names)
    marker = result.output / MARKER
    made_before = marker.is_file() and _marked_settings(marker) == asdict(settings)
    if made_before and not context.force:
        result.status = "up to date"
        _count_lists(result)
        return result
    making = result.output / MAKING_MARKER
    if not (marker.is_file() or making.is_file()) and result.output.exists() and (
            not result.output.is_dir() or any(result.output.iterdir())):
        raise SlicError(f"{out} exists and is not a dataset slic made (no {MARKER}); "
                        "make-dataset writes only into a new or empty folder or its own "
                        f"earlier one: choose another {option}")
    marker.unlink(missing_ok=True)
    try:
        result.output.mkdir(parents=True, exist_ok=True)
        making.touch()
        (result.output / LIST_FOLDER).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SlicError(
            f"cannot create {out}: {error.strerror}; choose a writable {option}"
        ) from error
    train_lines, test_lines = [], []
    total = settings.num_classes * settings.groups_per_class * settings.clips_per_group
    context.progress.start("writing synthetic videos", total)
    for class_index, class_name in enumerate(class_names):
        (result.output / class_name).mkdir(exist_ok=True)
        for group in range(1, settings.groups_per_class + 1):
            for clip in range(1, settings.clips_per_group + 1):
                relpath = f"{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.avi"
                frames = render_video(settings, class_index, group, clip)
                write_video(result.output / relpath, frames, settings.fps)
                if group <= settings.test_groups:
                    test_lines.append(relpath)
                else:
                    train_lines.append(f"{relpath} {class_index + 1}")
                context.progress.advance()
    context.progress.finish()
    lists = result.output / LIST_FOLDER
    (lists / "classInd.txt").write_text(
        "".join(f"{i + 1} {name}\n" for i, name in enumerate(class_names)))
    (lists / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train_lines))
    (lists / "testlist01.txt").write_text("".join(f"{line}\n" for line in test_lines))
    marker.write_text(json.dumps(asdict(settings)))
    making.unlink(missing_ok=True)
    _count_lists(result)
    result.seconds = time.perf_counter() - started
    return result


def _count_lists(result: MakeDatasetResult) -> None:
    lists = result.output / LIST_FOLDER
    result.num_train = len((lists / "trainlist01.txt").read_text().splitlines())
    result.num_test = len((lists / "testlist01.txt").read_text().splitlines())


# make-dataset's kinds (runtime.choices.MADE_DATASETS): a name to its writer
DATASET_MAKERS: dict[str, Callable[[MakeDatasetConfig, Path, RunContext, str],
                                   MakeDatasetResult]] = {
    "synthetic": write_synthetic,
}
