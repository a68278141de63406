"""What every dataset reader returns: the videos found, their classes and split membership."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from stages.runtime.errors import DataError

VIDEO_EXTENSIONS = (
    ".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".ogv",
)

# Split membership codes, the convention of HMDB51's split files.
UNUSED, TRAIN, TEST = 0, 1, 2
MEMBERSHIP_NAMES = {UNUSED: "unused", TRAIN: "train", TEST: "test"}


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    `relpath` is relative to the listing's `video_root`, with forward slashes. `membership` holds
    one code per split of the listing (UNUSED, TRAIN or TEST).
    """

    relpath: str
    class_name: str
    label: int
    membership: tuple[int, ...]
    keeps_extension: bool = False  # another video of the listing has the same path stem

    @property
    def video_id(self) -> str:
        """A stable, unique id: the relative path without its extension, or with it where
        two files differ only by their extension (a/x.mp4 and a/x.avi)."""
        return self.relpath if self.keeps_extension else os.path.splitext(self.relpath)[0]


def with_unique_ids(videos: list[VideoRecord]) -> list[VideoRecord]:
    """`videos` where those whose path stems coincide keep their extension in their id."""
    stems = Counter(os.path.splitext(v.relpath)[0] for v in videos)
    return [replace(v, keeps_extension=True) if stems[os.path.splitext(v.relpath)[0]] > 1
            else v for v in videos]


@dataclass
class DatasetListing:
    """The videos of a dataset as found on disk, sorted by relative path."""

    name: str
    video_root: Path
    class_names: list[str]
    split_names: list[str]
    videos: list[VideoRecord]
    missing: list[str] = field(default_factory=list)
    list_files: list[Path] = field(default_factory=list)
    skipped_links: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)  # FIFOs, devices: never read
    case_twins: list[str] = field(default_factory=list)  # paths equal but for their case
    warnings: list[str] = field(default_factory=list)  # what the user should look at

    def __post_init__(self) -> None:
        self.videos = with_unique_ids(self.videos)
        self.warnings = [*self.warnings, *split_warnings(self)]

    def split_index(self, split: str) -> int:
        """Position of `split` in `split_names`, with an error naming the available ones."""
        if split not in self.split_names:
            available = ", ".join(self.split_names)
            raise DataError(
                f"split {split} is not available for dataset {self.name} (available: {available});"
                " set --split to one of them"
            )
        return self.split_names.index(split)


def without_labels(listing: DatasetListing) -> DatasetListing:
    """`listing` as an unlabelled collection (data.labels none): no classes, every video
    label -1 and in the train split of every split, so pretraining trains on all of them."""
    videos = [replace(v, class_name="", label=-1, membership=(TRAIN,) * len(v.membership))
              for v in listing.videos]
    return replace(listing, class_names=[], videos=videos, warnings=[])


# Fewer test videos than this make R@k and top-1 a handful of coin flips.
FEW_TEST_VIDEOS = 10


def split_warnings(listing: DatasetListing) -> list[str]:
    """What about each split would make its figures mean little (`split_caveats`), each
    prefixed with the split's name."""
    found = []
    for position, split in enumerate(listing.split_names):
        train = [v.class_name for v in listing.videos if v.membership[position] == TRAIN]
        test = [v.class_name for v in listing.videos if v.membership[position] == TEST]
        found += [f"split {split}: {caveat}" for caveat in
                  split_caveats(train, test, [v.class_name for v in listing.videos])]
    return found


def split_caveats(train: Sequence[str], test: Sequence[str], classes: Sequence[str]
                  ) -> list[str]:
    """What would make R@k or top-1 measured on a split mean little: classes with test videos
    but no training video, classes with no test video, and a test split of only a handful of
    videos. `train` and `test` hold the class name of each training and test video, `classes`
    the classes there are (repeats allowed)."""
    trained, tested = set(train), set(test)
    untrained = sorted(tested - trained)
    untested = sorted(set(classes) - tested)
    found = []
    if untrained:
        found.append(f"{len(untrained)} classes have test videos but no training video, "
                     f"first: {', '.join(untrained[:3])}")
    if untested and test:
        found.append(f"{len(untested)} of {len(set(classes))} classes have no test video, "
                     f"first: {', '.join(untested[:3])}")
    if 0 < len(test) < FEW_TEST_VIDEOS:
        found.append(f"only {len(test)} test videos: R@k and top-1 on them are a handful of "
                     "coin flips")
    return found


@dataclass
class VideoScan:
    """The video files below a root: `files` maps the lower-cased relative path to the path as
    it is on disk; `skipped_links` lists the links (relative paths) left out because they lead
    to a folder or file already found (a link loop would otherwise enrol videos many times);
    `not_regular` the video-named FIFOs, devices and sockets (reading one would block or never
    end); `case_twins` the files whose path differs from one in `files` only by case (listed
    apart, never dropped)."""

    files: dict[str, str]
    skipped_links: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)
    case_twins: list[str] = field(default_factory=list)

    def notes(self) -> dict[str, list[str]]:
        """What the listing records of the scan besides its videos, as DatasetListing's
        keyword arguments."""
        return {"skipped_links": self.skipped_links, "not_regular": self.not_regular,
                "case_twins": self.case_twins}


def scan_videos(video_root: Path) -> VideoScan:
    """Find video files below `video_root`, each real file once (links followed).

    Lower-cased keys let split files whose case differs from the disk (UCF101's
    HandStandPushups) still match. A dangling link is kept: decoding it fails and is recorded.
    """
    found: dict[str, str] = {}
    skipped: list[str] = []
    not_regular: list[str] = []
    twins: list[str] = []
    seen_folders: set[str] = set()
    seen_files: set[str] = set()
    for folder, subfolders, files in os.walk(video_root, followlinks=True):
        seen_folders.add(os.path.realpath(folder))
        subfolders.sort()
        for name in list(subfolders):
            path = os.path.join(folder, name)
            if os.path.realpath(path) in seen_folders:
                subfolders.remove(name)
                skipped.append(os.path.relpath(path, video_root).replace(os.sep, "/"))
            else:
                seen_folders.add(os.path.realpath(path))
        for name in sorted(files):
            if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith("."):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, video_root).replace(os.sep, "/")
                real = os.path.realpath(path)
                if real in seen_files:
                    skipped.append(rel)
                    continue
                seen_files.add(real)
                if os.path.exists(path) and not os.path.isfile(path):
                    not_regular.append(rel)
                elif rel.lower() in found:
                    twins.append(rel)
                else:
                    found[rel.lower()] = rel
    return VideoScan(found, skipped, not_regular, twins)


def require_folder(path: Path, what: str, fix: str) -> Path:
    """Return `path` if it is a folder, else raise a DataError naming it and the fix."""
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist or is not a folder; {fix}")
    return path


def first_existing(candidates: list[Path]) -> Path | None:
    """The first of `candidates` that exists, or None."""
    return next((c for c in candidates if c.exists()), None)


def read_list_lines(path: Path) -> list[str]:
    """Non-empty lines of a split or list file, stripped (CRLF and trailing blanks tolerated)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"cannot read split file {path}: {error.strerror}") from error
    return [line.strip() for line in text.splitlines() if line.strip()]
