"""Where artifacts live: `<workspace>/<dataset name>/frames.h5`, `flow.h5`, `runs/<run>/`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from stages.runtime.sections import DataConfig, WorkspaceConfig

FRAMES, FLOW = "frames.h5", "flow.h5"  # a dataset folder's artifacts
RUNS, RANDOM_INIT = "runs", "random-init"  # its folders of runs and of baselines


def dataset_folder(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """`<workspace>/<data.name, else data.dataset>`: one dataset's artifacts and runs."""
    return Path(workspace.root) / (data.name or data.dataset)


def frames_path(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """The dataset's frames.h5."""
    return dataset_folder(workspace, data) / FRAMES


def flow_path(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """The dataset's flow.h5."""
    return dataset_folder(workspace, data) / FLOW


def runs_folder(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """The dataset's runs/ folder: one folder per pretraining run."""
    return dataset_folder(workspace, data) / RUNS


def random_init_folder(dataset: Path) -> Path:
    """Where the random-init baselines of the dataset folder `dataset` live."""
    return dataset / RANDOM_INIT


def dataset_folder_of(checkpoint: Path) -> Path | None:
    """The dataset folder a checkpoint belongs to (`<dataset>/runs/<run>/` or
    `<dataset>/random-init/<name>/`), or None for a checkpoint kept anywhere else."""
    folder = Path(checkpoint).parent
    return folder.parent.parent if folder.parent.name in (RUNS, RANDOM_INIT) else None


def frames_of_dataset(dataset: Path) -> Path:
    """frames.h5 of the dataset folder `dataset`."""
    return dataset / FRAMES


def standalone_retrieval_folder(workspace: WorkspaceConfig, name: str) -> Path:
    """`<workspace>/retrieval/<name>`: retrieval results of a features file from elsewhere."""
    return Path(workspace.root) / "retrieval" / name


def assignments_beside(features: Path) -> Path:
    """`<stem>.assignments.h5` beside a features file: where `slic cluster` writes by
    default."""
    return Path(features).with_name(f"{Path(features).stem}.assignments.h5")


def settings_folder(parent: Path, name: str, settings: dict[str, Any]) -> Path:
    """`<parent>/<name>-<tag>`, the results folder of one set of `settings` (tag: 8 hex of
    their digest), so results made with other settings sit beside it instead of replacing
    it. `<parent>/<name>` is a link to the newest such folder (see `point_latest`)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    tag = hashlib.sha256(text.encode()).hexdigest()[:8]
    return parent / f"{name}-{tag}"


def point_latest(folder: Path, name: str) -> Path:
    """Make `<folder's parent>/<name>` a relative link to `folder` (atomically), so the
    usual path shows the newest results; an old real folder of that name is left alone."""
    link = folder.parent / name
    if link.exists() and not link.is_symlink():
        return folder
    temporary = folder.parent / f".{name}.link-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(folder.name)
    os.replace(temporary, link)
    return link
