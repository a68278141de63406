"""HMDB51 in its official layout: `<class>/<video>.avi` plus `testTrainMulti_7030_splits/`."""

from __future__ import annotations

import re
from pathlib import Path

from stages.datasets.base import (
    UNUSED,
    DatasetListing,
    VideoRecord,
    first_existing,
    read_list_lines,
    require_folder,
    scan_videos,
)
from stages.runtime.errors import DataError

LIST_FOLDER = "testTrainMulti_7030_splits"
LIST_NAME = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


def read_hmdb51(root: Path, name: str = "hmdb51") -> DatasetListing:
    """List HMDB51; each split file line is `<video> <code>` with 1 train, 2 test, 0 unused."""
    require_folder(root, "dataset root", "pass the folder holding the class folders as --root")
    lists = first_existing([root / LIST_FOLDER, root.parent / LIST_FOLDER])
    if lists is None:
        raise DataError(
            f"no {LIST_FOLDER}/ folder found in or beside {root}; unpack HMDB51's split archive "
            "there"
        )
    per_split: dict[str, dict[str, Path]] = {}
    for list_file in sorted(lists.iterdir()):
        match = LIST_NAME.match(list_file.name)
        if match:
            per_split.setdefault(match["split"], {})[match["cls"]] = list_file
    if not per_split:
        raise DataError(f"{lists} holds no <class>_test_splitN.txt files")
    split_names = sorted(per_split)
    class_names = sorted(per_split[split_names[0]])
    label_of = {c: i for i, c in enumerate(class_names)}
    scan = scan_videos(root)
    on_disk = scan.files
    by_class_and_name = {
        (rel.split("/")[0], rel.split("/")[-1].lower()): rel for rel in on_disk.values()
    }
    membership: dict[str, list[int]] = {}
    missing: list[str] = []
    list_files: list[Path] = []
    for position, split in enumerate(split_names):
        for class_name, list_file in sorted(per_split[split].items()):
            list_files.append(list_file)
            for line in read_list_lines(list_file):
                video_name, _, code = line.rpartition(" ")
                if not video_name or code not in ("0", "1", "2"):
                    raise DataError(f"{list_file}: line {line!r} is not '<video> <0|1|2>'")
                rel = by_class_and_name.get((class_name, video_name.strip().lower()))
                if rel is None:
                    missing.append(f"{class_name}/{video_name.strip()}")
                    continue
                codes = membership.setdefault(rel, [UNUSED] * len(split_names))
                codes[position] = int(code)
    videos = [
        VideoRecord(rel, rel.split("/")[0], label_of[rel.split("/")[0]],
                    tuple(membership.get(rel, [UNUSED] * len(split_names))))
        for rel in on_disk.values()
        if rel.split("/")[0] in label_of
    ]
    return DatasetListing(
        name, root, class_names, split_names, sorted(videos, key=lambda v: v.relpath),
        sorted(set(missing)), list_files, **scan.notes(),
    )
