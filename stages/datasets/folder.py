"""Any tree of videos: `<root>/<class>/<video>` with optional train.txt/test.txt or a seeded
split, or an unlabelled collection (a flat folder, or any tree with data.labels none)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from stages.datasets.base import (
    TEST,
    TRAIN,
    UNUSED,
    DatasetListing,
    VideoRecord,
    VideoScan,
    read_list_lines,
    require_folder,
    scan_videos,
)
from stages.runtime.errors import DataError


def stratified_membership(
    relpaths_by_class: dict[str, list[str]], test_ratio: float, seed: int
) -> dict[str, int]:
    """Hold out `test_ratio` of each class (at least one video where a class has two or more).

    Deterministic: the same files, ratio and seed always give the same split, whatever order
    the file system lists them in.
    """
    codes: dict[str, int] = {}
    for class_name, relpaths in sorted(relpaths_by_class.items()):
        ordered = sorted(relpaths)
        rng = np.random.default_rng([seed, zlib.crc32(class_name.encode())])
        order = rng.permutation(len(ordered))
        num_test = int(round(test_ratio * len(ordered)))
        if len(ordered) >= 2:
            num_test = min(max(num_test, 1), len(ordered) - 1)
        for rank, index in enumerate(order):
            codes[ordered[index]] = TEST if rank < num_test else TRAIN
    return codes


def read_folder(
    root: Path, name: str = "folder", test_ratio: float = 0.3, seed: int = 0,
    labels: str = "auto",
) -> DatasetListing:
    """List the videos below `root`. With `labels` folders, or auto where no video sits
    directly in `root`, the classes are the root's sub-folders, sorted; with none, or auto
    where some video sits in `root` itself, the videos are unlabelled (see
    `unlabelled_folder`)."""
    require_folder(root, "dataset root", "pass the folder holding the videos")
    scan = scan_videos(root)
    relpaths = [*scan.files.values(), *scan.case_twins]  # case twins are videos of their own
    if not relpaths:
        raise DataError(f"no videos found under {root}; pass the folder holding them")
    at_root = sorted(rel for rel in relpaths if "/" not in rel)
    if labels == "folders" and at_root:
        raise DataError(f"{len(at_root)} videos sit directly in {root}, outside any class "
                        f"folder (first: {at_root[0]}); move them into <root>/<class>/, or set "
                        "data.labels: none to read the videos unlabelled")
    if labels == "none" or at_root:
        return unlabelled_folder(root, name, scan, at_root, labels)
    return class_folders(root, name, scan, test_ratio, seed)


def unlabelled_folder(root: Path, name: str, scan: VideoScan, at_root: list[str],
                      labels: str) -> DatasetListing:
    """Every video below `root`, at any depth, unlabelled (label -1, no classes) and in the
    train split: the sub-folders, if any, are not classes and train.txt/test.txt are not read
    (with no labels there is nothing to test against)."""
    relpaths = sorted([*scan.files.values(), *scan.case_twins])
    warnings = []
    nested = len(relpaths) - len(at_root)
    if labels == "auto" and nested:
        warnings.append(f"{len(at_root)} videos sit directly in {root} (first: {at_root[0]}), so "
                        f"its sub-folders are not read as classes and all {len(relpaths)} "
                        "videos are unlabelled; move those into class folders for labels")
    lists = [f.name for f in (root / "train.txt", root / "test.txt") if f.is_file()]
    if lists:
        warnings.append(f"{' and '.join(lists)} of {root} not read: an unlabelled collection "
                        "trains on every video")
    videos = [VideoRecord(rel, "", -1, (TRAIN,)) for rel in relpaths]
    return DatasetListing(name, root, [], ["1"], videos, **scan.notes(), warnings=warnings)


def class_folders(root: Path, name: str, scan: VideoScan, test_ratio: float, seed: int
                  ) -> DatasetListing:
    """List `<root>/<class>/<video>`: classes are the sub-folders, sorted; the split comes
    from train.txt and test.txt where both exist, else `stratified_membership`."""
    on_disk = scan.files
    by_class: dict[str, list[str]] = {}
    for rel in [*on_disk.values(), *scan.case_twins]:
        by_class.setdefault(rel.split("/")[0], []).append(rel)
    class_names = sorted(by_class)
    warnings = []
    if all(rel.count("/") >= 2 for videos in by_class.values() for rel in videos):
        first = class_names[0]
        warnings.append(f"every class folder of {root} holds its videos in sub-folders only "
                        f"({by_class[first][0]}): is --root one level too high? The classes "
                        f"would then be {root / first}'s sub-folders (or set data.labels: none "
                        "if the folders are no classes)")
    missing: list[str] = []
    list_files = [root / "train.txt", root / "test.txt"]
    if all(f.is_file() for f in list_files):
        codes = {rel: UNUSED for rel in [*on_disk.values(), *scan.case_twins]}
        for code, list_file in zip((TRAIN, TEST), list_files):
            for line in read_list_lines(list_file):
                # A line is a relative path (spaces allowed), optionally followed by a label.
                candidates = (line, line.rsplit(" ", 1)[0])
                keys = [c.replace("\\", "/").lower() for c in candidates]
                rel = next((on_disk[k] for k in keys if k in on_disk), None)
                if rel is None:
                    missing.append(line)
                else:
                    codes[rel] = code
    else:
        list_files = []
        codes = stratified_membership(by_class, test_ratio, seed)
    videos = [
        VideoRecord(rel, c, class_names.index(c), (codes[rel],))
        for c in class_names
        for rel in by_class[c]
    ]
    return DatasetListing(
        name, root, class_names, ["1"], sorted(videos, key=lambda v: v.relpath),
        sorted(missing), list_files, **scan.notes(), warnings=warnings,
    )
