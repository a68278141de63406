"""Unlabelled collections: a flat folder of videos (or any tree with data.labels none) goes
through extract-frames, compute-flow and pretrain; the stages that measure against classes
refuse it with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from slic_cli.app import app
from stages.compute_flow import run as compute_flow
from stages.extract_frames import ExtractFramesConfig
from stages.extract_frames import run as extract_frames
from stages.io.artifacts import KIND_FRAMES, open_artifact, read_video_table
from stages.io.features import load_features
from stages.io.video import write_video
from stages.make_dataset import MakeDatasetConfig, render_video
from stages.pretrain import PretrainConfig
from stages.pretrain import run as pretrain
from stages.runtime.sections import DataConfig, WorkspaceConfig
from tests.conftest import SMALL_FLOW, TINY_PRETRAIN

RENDER = MakeDatasetConfig(num_classes=3, min_size=48, max_size=64, min_seconds=0.6,
                           max_seconds=0.8, seed=3)


def write_videos(root: Path, relpaths: list[str]) -> None:
    """A tiny real video (15-20 frames of 48-64 px) at each of `relpaths` below `root`."""
    for index, rel in enumerate(relpaths):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / rel, render_video(RENDER, index % 3, 1, index), fps=25)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def flat_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose folder/frames.h5 and flow.h5 hold a flat folder of 6 videos."""
    root = tmp_path_factory.mktemp("flat")
    write_videos(root / "videos", [f"clip{i}.mp4" for i in range(6)])
    workspace = WorkspaceConfig(root=str(root / "ws"))
    data = DataConfig(dataset="folder", root=str(root / "videos"))
    extract_frames(ExtractFramesConfig(short_side=48, workers=1), data, workspace)
    compute_flow(SMALL_FLOW, data, workspace)
    return root / "ws"


def test_frames_and_flow_of_a_flat_folder_hold_unlabelled_train_videos(flat_workspace):
    with open_artifact(flat_workspace / "folder" / "frames.h5", KIND_FRAMES) as h5:
        table = read_video_table(h5)
    assert table.class_names == [] and table.columns["label"].tolist() == [-1] * 6
    assert table.splits[:, 0].tolist() == [1] * 6  # TRAIN
    described = json.loads(invoke("inspect", str(flat_workspace / "folder" / "flow.h5"),
                                  "--json").stdout)
    assert described["num_videos"] == 6 and described["classes"] == []
    tables = invoke("inspect", str(flat_workspace / "folder" / "frames.h5")).stdout
    assert "none (unlabelled videos)" in tables and "per class" not in tables


def test_a_tiny_pretrain_monitors_what_needs_no_labels(flat_workspace):
    settings = PretrainConfig(**{**TINY_PRETRAIN, "batch_size": 4}, epochs=2,
                              run_name="unlabelled")
    result = pretrain(settings, DataConfig(dataset="folder"),
                      WorkspaceConfig(root=str(flat_workspace)))
    summary = result.summary()
    assert summary["status"] == "trained" and summary["train_videos"] == 6
    assert {"num_clusters", "largest_cluster_share", "mean_cosine", "effective_rank"} <= set(
        summary)
    assert not {"r1", "r5", "nmi", "ami"} & set(summary)
    folder = result.run_folder
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert all(r.get("positive_fp_rate") is None and "r1" not in r for r in records)
    assert "effective_rank" in records[1]  # the last epoch's evaluation: collapse measures
    assert 0 < records[-1]["largest_cluster_share"] <= 1
    assert {"loss.png", "clusters.png", "collapse.png"} <= {p.name for p in folder.iterdir()}
    assert not (folder / "recall.png").exists() and not (folder / "rates.png").exists()
    features = load_features(folder / "features.h5")
    assert features.features.shape == (6, 32) and features.labels is None
    clustered = json.loads(invoke("cluster", "--features", str(folder / "features.h5"),
                                  "--json").stdout)
    assert clustered["num_videos"] == 6 and clustered["quality"] == []
    page = invoke("report", str(folder))
    assert page.exit_code == 0, page.output
    text = (folder / "report.html").read_text()
    assert "Embeddings by cluster<" in text and "by true class" not in text
    assert "effective rank, last measured" in text


@pytest.mark.parametrize("command, words", [
    (["retrieve"], ["retrieve measures R@k", "slic search"]),
    (["linear-probe"], ["linear-probe", "needs labelled"]),
    (["finetune"], ["finetune", "needs labelled"]),
    (["finetune", "--random-init"], ["finetune", "needs labelled"]),
    (["retrieve", "--random-init"], ["retrieve measures R@k"]),
])
def test_stages_that_measure_against_classes_refuse_in_one_line(flat_workspace, tmp_path,
                                                                command, words):
    run = tmp_path / "ws" / "folder" / "runs" / "r"
    run.mkdir(parents=True)
    (tmp_path / "ws" / "folder" / "frames.h5").symlink_to(
        flat_workspace / "folder" / "frames.h5")
    (run / "best.pt").write_bytes(b"not read: the frames are refused first")
    result = invoke(*command, "--run", str(run), "--workspace", str(tmp_path / "ws"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds unlabelled videos" in lines[0], result.stderr
    assert all(word in lines[0] for word in words)
    assert not (tmp_path / "ws" / "folder" / "random-init").exists()


def test_retrieve_refuses_features_of_unlabelled_videos(tmp_path):
    features = tmp_path / "f.npz"
    np.savez(features, features=np.eye(4, 8, dtype=np.float32),
             split=np.array(["train", "train", "test", "test"]))
    result = invoke("retrieve", "--features", str(features), "--workspace", str(tmp_path))
    assert result.exit_code == 2 and "carry no labels" in result.stderr, result.output


def test_a_nested_tree_with_labels_none_keeps_one_id_per_path(tmp_path):
    names = [f"2024-05-0{day}/cam{cam}/clip.mp4" for day in (1, 2) for cam in (1, 2)]
    write_videos(tmp_path / "videos", names)
    result = invoke("extract-frames", "--dataset", "folder", "--root", str(tmp_path / "videos"),
                    "--labels", "none", "--workspace", str(tmp_path / "ws"), "--short-side",
                    "32", "--workers", "1", "--quiet", "--json")
    assert result.exit_code == 0, result.output
    with open_artifact(tmp_path / "ws" / "folder" / "frames.h5", KIND_FRAMES) as h5:
        table = read_video_table(h5)
    assert [str(v) for v in table.columns["video_id"]] == [n[:-4] for n in names]
    assert table.class_names == [] and set(table.columns["label"].tolist()) == {-1}
