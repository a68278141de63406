"""UCF101 in its official layout: `<Class>/v_<Class>_gXX_cYY.avi` plus `ucfTrainTestlist/`."""

from __future__ import annotations

from pathlib import Path

from stages.datasets.base import (
    TEST,
    TRAIN,
    UNUSED,
    DatasetListing,
    VideoRecord,
    first_existing,
    read_list_lines,
    require_folder,
    scan_videos,
)
from stages.runtime.errors import DataError

LIST_FOLDER = "ucfTrainTestlist"


def _locate(root: Path) -> tuple[Path, Path]:
    """Find the class folders and the list folder for the layouts users have.

    Accepted: `root/<Class>/...` with `root/ucfTrainTestlist`, `root/UCF-101/<Class>/...` with the
    lists in `root`, or `root` = `UCF-101/` with the lists beside it.
    """
    require_folder(root, "dataset root", "pass the folder holding the class folders as --root")
    video_root = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    lists = first_existing(
        [root / LIST_FOLDER, video_root / LIST_FOLDER, root.parent / LIST_FOLDER]
    )
    if lists is None:
        raise DataError(
            f"no {LIST_FOLDER}/ folder found in or beside {root}; download UCF101's train/test "
            f"lists and unpack them there"
        )
    return video_root, lists


def _class_names(lists: Path) -> list[str]:
    class_file = lists / "classInd.txt"
    if not class_file.is_file():
        raise DataError(f"missing {class_file}; it names the classes (lines '1 ApplyEyeMakeup')")
    names = []
    for line in read_list_lines(class_file):
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{class_file}: line {line!r} is not '<index> <ClassName>'")
        names.append(parts[1])
    return names


def read_ucf101(root: Path, name: str = "ucf101") -> DatasetListing:
    """List UCF101 (or data in its layout) with membership for each split list present."""
    video_root, lists = _locate(root)
    class_names = _class_names(lists)
    label_of = {c.lower(): i for i, c in enumerate(class_names)}
    scan = scan_videos(video_root)
    on_disk = scan.files
    split_names = [
        str(n) for n in (1, 2, 3)
        if (lists / f"trainlist0{n}.txt").is_file() and (lists / f"testlist0{n}.txt").is_file()
    ]
    if not split_names:
        raise DataError(f"{lists} holds no trainlist0N.txt/testlist0N.txt pair")
    membership: dict[str, list[int]] = {rel: [UNUSED] * len(split_names) for rel in on_disk}
    missing: list[str] = []
    list_files = [lists / "classInd.txt"]
    for position, split in enumerate(split_names):
        for code, stem in ((TRAIN, "trainlist"), (TEST, "testlist")):
            list_file = lists / f"{stem}0{split}.txt"
            list_files.append(list_file)
            for line in read_list_lines(list_file):
                rel = line.split()[0].replace("\\", "/").lower()
                if rel in membership:
                    membership[rel][position] = code
                else:
                    missing.append(line.split()[0])
    videos = []
    for lower, rel in on_disk.items():
        class_name = rel.split("/")[0]
        if class_name.lower() not in label_of:
            continue  # a folder that is not one of the classes (for example the list folder)
        canonical = class_names[label_of[class_name.lower()]]
        videos.append(
            VideoRecord(rel, canonical, label_of[class_name.lower()], tuple(membership[lower]))
        )
    return DatasetListing(
        name, video_root, class_names, split_names, sorted(videos, key=lambda v: v.relpath),
        sorted(set(missing)), list_files, **scan.notes(),
    )
