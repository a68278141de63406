"""pretrain end to end on the tiny synthetic workspace (r3d_tiny, 4-frame 32-px clips)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from stages.cluster import ClusterConfig
from stages.cluster import run as cluster
from stages.io.artifacts import read_assignment_rounds
from stages.io.checkpoint import load_checkpoint
from stages.io.features import load_features
from stages.pretrain import PretrainConfig, run
from stages.runtime.sections import DataConfig, WorkspaceConfig
from tests.conftest import run_slic, slic_executable

pytestmark = pytest.mark.slow  # every test here trains, most through the `slic` command

DATA = DataConfig(dataset="synthetic")
TINY = {"arch": "r3d_tiny", "clip_length": 4, "crop_size": 32, "batch_size": 6,
        "projection_hidden": 64, "projection_dim": 32, "cluster_every": 2, "eval_every": 1,
        "workers": 0, "epochs": 2}
TINY_SET = [f"--set=pretrain.{k}={v}" for k, v in TINY.items() if k not in ("epochs",)]


def tiny(**changes) -> PretrainConfig:
    return PretrainConfig(**{**TINY, **changes})


def cli_args(workspace, *extra: str) -> list[str]:
    return ["pretrain", "--dataset", "synthetic", "--workspace", str(workspace), "--quiet",
            *TINY_SET, *extra]


def records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_run_writes_every_artifact(training_workspace, tmp_path):
    workspace = WorkspaceConfig(root=str(training_workspace))
    result = run(tiny(run_name="complete", epochs=3), DATA, workspace)
    folder = result.run_folder
    for name in ("config.yaml", "checkpoint.pt", "best.pt", "metrics.jsonl", "assignments.h5",
                 "features.h5", "loss.png", "recall.png", "clusters.png", "rates.png"):
        assert (folder / name).is_file(), name
    found = records(folder)
    assert [r["epoch"] for r in found] == [0, 1, 2, 3] and found[-1]["final"]
    assert all(np.isfinite(r["loss"]) for r in found[:-1])
    assert {"r1", "r5", "positive_fp_rate", "negative_fn_rate"} <= set(found[0])
    assert {"nmi", "ami", "num_clusters"} <= set(found[0]) and "nmi" in found[-1]
    health = {"mean_cosine", "uniformity", "effective_rank", "alignment"}
    assert health <= set(found[0])  # collapse measures: every evaluated epoch
    assert -1 <= found[0]["mean_cosine"] <= 1 and 1 <= found[0]["effective_rank"] <= 32
    assert (folder / "collapse.png").is_file()
    # Cosine distances of the mined triplets, in epochs that mined any (a round that puts
    # every video in one cluster leaves no negative, and the figures are then 0).
    mined = [(r["positive_distance"], r["negative_distance"]) for r in found[:-1]
             if r["triplets_per_step"] > 0]
    assert mined and all(0 < d_ap < 2 and 0 < d_an < 2 for d_ap, d_an in mined)
    assert all(r["positive_distance"] == r["negative_distance"] == 0 for r in found[:-1]
               if r["triplets_per_step"] == 0)
    split = {"embed_seconds", "cluster_seconds", "quality_seconds", "broadcast_seconds"}
    assert split <= set(found[0]) and all(found[0][key] >= 0 for key in split)
    with h5py.File(folder / "assignments.h5") as h5:
        assert [epoch for epoch, _ in read_assignment_rounds(h5)] == [0, 2, 3]
    features = load_features(folder / "features.h5")
    assert features.features.shape == (16, 32) and features.labels is not None
    clustered = cluster(ClusterConfig(), folder / "features.h5", out=tmp_path / "a.h5")
    assert clustered.num_videos == 16 and clustered.quality
    best = load_checkpoint(folder / "best.pt")
    assert best["criterion"] == "last" and best["arch"] == "r3d_tiny"
    state = load_checkpoint(folder / "checkpoint.pt")  # the run's own provenance
    assert state["started_at"] <= state["finished_at"] and state["command"] == "python"
    assert [Path(i["path"]).name for i in state["inputs"]] == ["frames.h5", "flow.h5"]
    stored = yaml.safe_load((folder / "config.yaml").read_text())  # called from Python
    assert stored["pretrain"]["epochs"] == 3 and stored["pretrain"]["arch"] == "r3d_tiny"
    assert stored["data"]["dataset"] == "synthetic"
    summary = result.summary()
    assert summary["status"] == "trained"
    assert summary["train_videos"] == 16 and summary["short_videos_skipped"] == 0


def test_supervised_labels_make_no_false_positives(training_workspace):
    workspace = WorkspaceConfig(root=str(training_workspace))
    result = run(tiny(run_name="supervised", pseudo_labels="labels", epochs=1, p_alpha=0.0),
                 DATA, workspace)
    first = records(result.run_folder)[0]
    assert first["positive_fp_rate"] == 0.0 and first["negative_fn_rate"] == 0.0


def test_clustering_warmup_trains_instance_only_first(training_workspace):
    workspace = WorkspaceConfig(root=str(training_workspace))
    result = run(tiny(run_name="warmup", epochs=4, cluster_warmup_epochs=1), DATA, workspace)
    found = records(result.run_folder)
    assert "nmi" not in found[0] and found[0]["positive_fp_rate"] == 0.0  # own video only
    assert "nmi" in found[1] and "nmi" not in found[2] and "nmi" in found[3]
    with h5py.File(result.run_folder / "assignments.h5") as h5:
        assert [epoch for epoch, _ in read_assignment_rounds(h5)] == [1, 3, 4]


def _weights(path):
    return load_checkpoint(path)["model"]


def test_resume_after_sigkill_gives_the_same_weights(training_workspace):
    args = [*cli_args(training_workspace, "--epochs", "4", "--workers", "1")]
    run_slic(*args, "--run-name", "straight")
    folder = training_workspace / "synthetic" / "runs"
    process = subprocess.Popen([slic_executable(), *args, "--run-name", "killed"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = folder / "killed" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().strip()):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    killed = load_checkpoint(folder / "killed" / "checkpoint.pt")
    assert killed["epoch"] < 4 and killed["finished_at"] is None
    run_slic(*args, "--run-name", "killed", "--resume")
    resumed_state = load_checkpoint(folder / "killed" / "checkpoint.pt")
    assert resumed_state["started_at"] == killed["started_at"]  # when the run first started
    assert resumed_state["finished_at"] >= killed["started_at"]
    straight, resumed = _weights(folder / "straight" / "checkpoint.pt"), _weights(
        folder / "killed" / "checkpoint.pt")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
    assert [r["epoch"] for r in records(folder / "killed")] == [0, 1, 2, 3, 4]
    again = run_slic(*args, "--run-name", "killed", "--resume", "--json")
    assert json.loads(again.stdout)["status"] == "up to date"


def test_sigterm_during_training_stops_with_one_line_and_resumes(training_workspace):
    """A scheduler's kill while the loader's workers run: one line, exit 143, no worker's
    traceback, and the run resumes from its last checkpoint."""
    args = cli_args(training_workspace, "--epochs", "4", "--workers", "2", "--run-name",
                    "stopped")
    process = subprocess.Popen([slic_executable(), *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    metrics = training_workspace / "synthetic" / "runs" / "stopped" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().strip()):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("terminated:") and "Traceback" not in stderr, stderr
    run_slic(*args, "--resume")
    assert load_checkpoint(metrics.parent / "checkpoint.pt")["epoch"] == 4
    epochs = [r["epoch"] for r in records(metrics.parent) if not r.get("final")]
    assert epochs == [0, 1, 2, 3]  # each epoch once: the resumed run redid only the unfinished


def test_existing_run_bad_config_and_divergence(training_workspace):
    args = cli_args(training_workspace, "--epochs", "1", "--run-name", "guarded")
    run_slic(*args)
    again = run_slic(*args, "--json")  # the same command: nothing to do
    assert json.loads(again.stdout)["status"] == "up to date"
    changed = run_slic(*args, "--set", "pretrain.margin=0.3", check=False)
    assert changed.returncode == 2 and "pretrain.margin was 0.2, now 0.3" in changed.stderr
    assert "--resume" in changed.stderr and "--force" in changed.stderr
    bad_arch = run_slic(*cli_args(training_workspace, "--set", "pretrain.arch=r3d_99"),
                        check=False)
    assert bad_arch.returncode == 2 and "pretrain.arch" in bad_arch.stderr
    bad_value = run_slic(*cli_args(training_workspace, "--set", "pretrain.p_alpha=2"),
                         check=False)
    assert bad_value.returncode == 2 and "pretrain.p_alpha" in bad_value.stderr
    assert "Traceback" not in bad_arch.stderr + bad_value.stderr
    checkpoint = training_workspace / "synthetic" / "runs" / "guarded" / "checkpoint.pt"
    before = checkpoint.read_bytes()
    diverged = run_slic(*args, "--resume", "--epochs", "2", "--lr", "1e30", check=False)
    assert diverged.returncode == 2, diverged.stderr
    assert "loss became" in diverged.stderr and "Traceback" not in diverged.stderr
    assert checkpoint.read_bytes() == before


@pytest.mark.skipif(sys.platform != "linux", reason="gloo on CPU is tested on Linux")
def test_torchrun_two_ranks_agree_and_learn(training_workspace):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", "29561", slic_executable(),
               *cli_args(training_workspace, "--epochs", "6", "--run-name", "ddp",
                         "--set", "pretrain.multiview=false",
                         # batch 6 on 2 ranks: 3 items each, mined as one group of 3
                         "--set", "pretrain.mining_pool=3")]
    process = subprocess.run(command, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr[-3000:]
    found = records(training_workspace / "synthetic" / "runs" / "ddp")
    rounds = [r for r in found if "num_clusters" in r]
    assert len(rounds) == 4 and all(r["ranks_agree"] for r in rounds)
    losses = [r["loss"] for r in found if "loss" in r]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
