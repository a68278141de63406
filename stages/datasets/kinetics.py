"""Kinetics-400 from its CSV annotations and clips named `<youtube_id>_<start>_<end>.mp4`."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from stages.datasets.base import (
    TEST,
    TRAIN,
    DatasetListing,
    VideoRecord,
    first_existing,
    require_folder,
    scan_videos,
)
from stages.runtime.errors import DataError
from stages.runtime.settings import quoted

# Kinetics evaluates on its validation set: it plays the role of the test split here.
CSV_ROLES = (("train", TRAIN), ("validate", TEST), ("val", TEST))
REQUIRED_COLUMNS = {"label", "youtube_id", "time_start", "time_end"}


def clip_stem(youtube_id: str, start: str, end: str) -> str:
    """The file stem of a clip: `<youtube_id>_<start:06d>_<end:06d>`."""
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def _annotation_folder(root: Path) -> Path:
    candidates = [root / "annotations", root, root.parent / "annotations", root.parent]
    found = first_existing([c / "train.csv" for c in candidates])
    if found is None:
        raise DataError(
            f"no train.csv found in {root}/annotations, {root} or beside it; put Kinetics' "
            "annotation CSVs (train.csv, validate.csv) there"
        )
    return found.parent


def _read_rows(csv_file: Path) -> list[dict[str, str]]:
    """The rows of an annotation CSV, each with every REQUIRED_COLUMNS value."""
    try:
        with csv_file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or [])
            if not REQUIRED_COLUMNS <= columns:
                raise DataError(
                    f"{csv_file} lacks columns {sorted(REQUIRED_COLUMNS - columns)}; expected "
                    "the Kinetics format label,youtube_id,time_start,time_end,split"
                )
            rows = list(reader)
    except UnicodeDecodeError:
        raise DataError(f"{csv_file} is not UTF-8 text; pass Kinetics' annotation CSV") from None
    except csv.Error as error:  # a field past csv's size limit, a NUL byte
        raise DataError(f"{csv_file} is not a readable CSV ({error}); pass Kinetics' "
                        "annotation CSV") from None
    short = next((row for row in rows if None in (row[c] for c in REQUIRED_COLUMNS)), None)
    if short is not None:
        raise DataError(f"{csv_file}: row {quoted(short)} has fewer fields than the header")
    return rows


def read_kinetics400(root: Path, name: str = "kinetics400") -> DatasetListing:
    """List Kinetics clips under `root/<split>/[<class>/]`, matched to the CSVs by file stem."""
    require_folder(root, "dataset root", "pass the folder holding train/ and val/ as --root")
    annotations = _annotation_folder(root)
    scan = scan_videos(root)
    on_disk = {os.path.splitext(rel.rsplit("/", 1)[-1])[0]: rel for rel in scan.files.values()}
    labelled: dict[str, tuple[str, int]] = {}
    missing: list[str] = []
    list_files = []
    for stem, code in CSV_ROLES:
        csv_file = annotations / f"{stem}.csv"
        if not csv_file.is_file() or (stem == "val" and (annotations / "validate.csv").is_file()):
            continue
        list_files.append(csv_file)
        for row in _read_rows(csv_file):
            try:
                clip = clip_stem(row["youtube_id"], row["time_start"], row["time_end"])
            except (ValueError, OverflowError) as error:  # not a number, or infinite
                raise DataError(f"{csv_file}: bad time in row {quoted(row)}") from error
            if clip in on_disk:
                labelled[on_disk[clip]] = (row["label"].strip(), code)
            else:
                missing.append(f"{clip}.mp4")
    class_names = sorted({label for label, _ in labelled.values()})
    label_of = {c: i for i, c in enumerate(class_names)}
    videos = [
        VideoRecord(rel, label, label_of[label], (code,))
        for rel, (label, code) in labelled.items()
    ]
    return DatasetListing(
        name, root, class_names, ["1"], sorted(videos, key=lambda v: v.relpath),
        sorted(missing), list_files, **scan.notes(),
    )
