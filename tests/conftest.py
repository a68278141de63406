"""Shared fixtures: a small synthetic dataset made once per session, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.make_dataset import MakeDatasetConfig
from stages.make_dataset import run as make_dataset

SMALL = MakeDatasetConfig(num_classes=4, groups_per_class=3, clips_per_group=2, test_groups=1,
                          min_size=64, max_size=96, min_seconds=0.8, max_seconds=1.2, seed=3)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 real .avi videos (4 motion classes) in the UCF101 layout. Treat as read-only."""
    root = tmp_path_factory.mktemp("synthetic")
    make_dataset(SMALL, root)
    return root


@pytest.fixture(scope="session")
def training_workspace(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding synthetic/frames.h5 (short side 48) and synthetic/flow.h5."""
    from stages.compute_flow import ComputeFlowConfig
    from stages.compute_flow import run as compute_flow
    from stages.extract_frames import ExtractFramesConfig
    from stages.extract_frames import run as extract_frames
    from stages.shared_config import DataConfig, WorkspaceConfig

    root = tmp_path_factory.mktemp("training-ws")
    workspace = WorkspaceConfig(root=str(root))
    data = DataConfig(dataset="synthetic", root=str(synthetic_root))
    extract_frames(ExtractFramesConfig(short_side=48, workers=1), data, workspace)
    compute_flow(ComputeFlowConfig(workers=1), data, workspace)
    return root


def slic_executable() -> str:
    """The installed `slic` command next to this Python."""
    candidate = Path(sys.executable).with_name("slic")
    return str(candidate) if candidate.exists() else "slic"


def run_slic(*args: str, cwd: Path | None = None, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed `slic` as a subprocess, as a user would."""
    process = subprocess.run([slic_executable(), *args], cwd=cwd, capture_output=True,
                             text=True, env={**os.environ, **(env or {})}, timeout=600)
    if check and process.returncode != 0:
        raise AssertionError(f"slic {' '.join(args)} failed:\n{process.stdout}\n{process.stderr}")
    return process


def run_slic_json(*args: str, cwd: Path | None = None) -> dict:
    return json.loads(run_slic(*args, "--json", cwd=cwd).stdout)
