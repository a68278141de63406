"""Any `<root>/<class>/<video>` tree, with optional train.txt/test.txt or a seeded split."""

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
    root: Path, name: str = "folder", test_ratio: float = 0.3, seed: int = 0
) -> DatasetListing:
    """List `<root>/<class>/<video>`; classes are the sub-folders, sorted."""
    require_folder(root, "dataset root", "pass the folder holding one sub-folder per class")
    scan = scan_videos(root)
    on_disk = scan.files
    by_class: dict[str, list[str]] = {}
    for rel in [*on_disk.values(), *scan.case_twins]:  # case twins are videos of their own
        if "/" in rel:
            by_class.setdefault(rel.split("/")[0], []).append(rel)
    if not by_class:
        raise DataError(f"no videos found in class sub-folders of {root}")
    class_names = sorted(by_class)
    warnings = []
    if all(rel.count("/") >= 2 for videos in by_class.values() for rel in videos):
        first = class_names[0]
        warnings.append(f"every class folder of {root} holds its videos in sub-folders only "
                        f"({by_class[first][0]}): is --root one level too high? The classes "
                        f"would then be {root / first}'s sub-folders")
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
