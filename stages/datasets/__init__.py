"""The dataset registry: a name to a reader of that dataset's official layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stages.datasets.base import DatasetListing, VideoRecord, without_labels
from stages.datasets.folder import read_folder
from stages.datasets.hmdb51 import read_hmdb51
from stages.datasets.kinetics import read_kinetics400
from stages.datasets.ucf101 import read_ucf101
from stages.runtime.errors import DataError

# (root, test_ratio, split_seed, labels) -> listing; labels is data.labels (LABEL_SOURCES).
DatasetReader = Callable[[Path, float, int, str], DatasetListing]

DATASETS: dict[str, DatasetReader] = {
    "ucf101": lambda root, ratio, seed, labels: read_ucf101(root),
    "hmdb51": lambda root, ratio, seed, labels: read_hmdb51(root),
    "kinetics400": lambda root, ratio, seed, labels: read_kinetics400(root),
    "folder": lambda root, ratio, seed, labels: read_folder(root, "folder", ratio, seed, labels),
    # `slic make-dataset synthetic` writes the UCF101 layout.
    "synthetic": lambda root, ratio, seed, labels: read_ucf101(root, "synthetic"),
}


def list_dataset(
    dataset: str, root: Path | None, test_ratio: float = 0.3, split_seed: int = 0,
    labels: str = "auto",
) -> DatasetListing:
    """Read the dataset `dataset` at `root` (see DATASETS for the names); with `labels` none
    its videos are unlabelled whatever the layout (`without_labels`)."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if root is None:
        raise DataError(f"no dataset root given for {dataset}; pass --root DIR or set data.root")
    listing = DATASETS[dataset](Path(root), test_ratio, split_seed, labels)
    if labels == "none" and listing.class_names:
        listing = without_labels(listing)
    if not listing.videos:
        raise DataError(f"no videos of dataset {dataset} found under {root}")
    return listing


__all__ = ["DATASETS", "DatasetListing", "VideoRecord", "list_dataset"]
