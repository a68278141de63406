"""Config sections every stage shares: where the workspace is and which dataset to read."""

from __future__ import annotations

from dataclasses import dataclass

from stages.choices import DATASET_LAYOUTS
from stages.settings import setting


@dataclass
class WorkspaceConfig:
    """workspace: where stages keep their artifacts so they chain without repeating paths"""

    root: str = setting(
        "slic-work", "folder holding <name>/frames.h5, <name>/flow.h5, <name>/runs/"
    )


@dataclass
class DataConfig:
    """data: the dataset, read straight from its official layout"""

    dataset: str = setting("ucf101", "dataset layout to read", choices=DATASET_LAYOUTS)
    root: str | None = setting(None, "folder holding the videos (and split lists) of the dataset")
    name: str | None = setting(
        None, "workspace folder for this dataset; null uses the dataset name"
    )
    split: int = setting(1, "official split used by training and evaluation", choices=(1, 2, 3))
    test_ratio: float = setting(
        0.3, "folder datasets without train.txt/test.txt: share of each class held out for test",
        minimum=0.0, maximum=0.9,
    )
    split_seed: int = setting(0, "folder datasets without lists: seed of the stratified split",
                              minimum=0)
