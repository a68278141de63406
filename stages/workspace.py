"""Where artifacts live: `<workspace>/<dataset name>/frames.h5`, `flow.h5`, `runs/<run>/`."""

from __future__ import annotations

from pathlib import Path

from stages.shared_config import DataConfig, WorkspaceConfig


def dataset_folder(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    return Path(workspace.root) / (data.name or data.dataset)


def frames_path(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    return dataset_folder(workspace, data) / "frames.h5"


def flow_path(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    return dataset_folder(workspace, data) / "flow.h5"


def runs_folder(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    return dataset_folder(workspace, data) / "runs"
