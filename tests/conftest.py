"""Shared fixtures, each made once per session: a small synthetic dataset, its frames.h5 and
flow.h5, a tiny pretraining run, a tiny frames.h5 of random frames; and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.compute_flow_config import ComputeFlowConfig
from stages.make_dataset import MakeDatasetConfig
from stages.make_dataset import run as make_dataset
from tests.helpers import TinyVideo, write_frames, write_tiny_frames


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op torch thread in the test process: its tensors are tiny, and on a 2-core
    machine shared with other work a second thread mostly waits on the first (a 30-epoch
    linear probe on 400 points: 0.7 s with one thread, 6 s with two under load). The
    commands the tests start keep torch's default."""
    import torch

    torch.set_num_threads(1)


# The test frames are 48-64 px: their flow is measured in their own pixels, not computed at
# the 240-px reference size (25x the pixels; test_compute_flow.py checks the reference).
SMALL_FLOW = ComputeFlowConfig(workers=1, reference_short_side=None)

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
    from stages.compute_flow import run as compute_flow
    from stages.extract_frames import ExtractFramesConfig
    from stages.extract_frames import run as extract_frames
    from stages.runtime.sections import DataConfig, WorkspaceConfig

    root = tmp_path_factory.mktemp("training-ws")
    workspace = WorkspaceConfig(root=str(root))
    data = DataConfig(dataset="synthetic", root=str(synthetic_root))
    extract_frames(ExtractFramesConfig(short_side=48, workers=1), data, workspace)
    compute_flow(SMALL_FLOW, data, workspace)
    return root


# The pretrain settings of the tiny runs the evaluation tests start from (r3d_tiny, 4-frame
# 32-px clips): as `--set pretrain.<key>=<value>` options and as PretrainConfig arguments.
TINY_PRETRAIN = {"arch": "r3d_tiny", "clip_length": 4, "crop_size": 32, "projection_hidden": 64,
                 "projection_dim": 32, "batch_size": 6, "workers": 0}


@pytest.fixture(scope="session")
def pretrained_run(training_workspace: Path) -> Path:
    """The folder of a 1-epoch TINY_PRETRAIN run in the training workspace (runs/tiny-source),
    made once for the finetune and linear-probe tests. Read-only: copy its best.pt, or the
    whole folder with `copy_run`, before writing beside it."""
    from stages.pretrain import PretrainConfig
    from stages.pretrain import run as pretrain
    from stages.runtime.sections import DataConfig, WorkspaceConfig

    settings = PretrainConfig(**TINY_PRETRAIN, epochs=1, run_name="tiny-source")
    return pretrain(settings, DataConfig(dataset="synthetic"),
                    WorkspaceConfig(root=str(training_workspace))).run_folder


def copy_run(run_folder: Path, name: str) -> Path:
    """A fresh copy of a run folder beside it, under `name` (an older copy is replaced)."""
    target = run_folder.parent / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run_folder, target)
    return target


@pytest.fixture(scope="session")
def motion_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose synthetic/frames.h5 and flow.h5 hold 24 small rendered videos laid
    out as SMALL's: 4 motion classes x 3 groups x 2 clips, group 1 the test split; 13-20 frames
    of 48-64 px. The frames are stored as JPEG like extract-frames', but with no video file
    encoded or decoded; the flow is compute-flow's (DIS). A cheap stand-in for
    `training_workspace` where real video files do not matter. Read-only."""
    from stages.compute_flow import run as compute_flow
    from stages.make_dataset import render_video
    from stages.runtime.sections import DataConfig, WorkspaceConfig
    from stages.synthetic.motion import MOTIONS

    root = tmp_path_factory.mktemp("motion-ws")
    settings = MakeDatasetConfig(num_classes=4, min_size=48, max_size=64, min_seconds=0.5,
                                 max_seconds=0.8, seed=3)
    names = list(MOTIONS)[:4]
    videos = [TinyVideo(f"v_{name}_g{group:02d}_c{clip:02d}", label,
                        render_video(settings, label, group, clip), test=group == 1)
              for label, name in enumerate(names) for group in (1, 2, 3) for clip in (1, 2)]
    write_frames(root / "synthetic" / "frames.h5", videos, names, codec="jpeg")
    compute_flow(SMALL_FLOW, DataConfig(dataset="synthetic"),
                 WorkspaceConfig(root=str(root)))
    return root


@pytest.fixture(scope="session")
def tiny_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frames.h5 of 8 videos of random raw frames (see `write_tiny_frames`). Read-only."""
    return write_tiny_frames(tmp_path_factory.mktemp("tiny-frames") / "frames.h5")


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
