"""Tiny pretraining runs in the quick loop (r3d_tiny, 4-frame 32-px clips, 16 training
videos, 2 steps an epoch): a run stopped after an epoch's checkpoint and resumed ends where an
uninterrupted one does, and pseudo-labels reach the videos they belong to."""

from __future__ import annotations

import gc
import multiprocessing
import shutil
from pathlib import Path

import pytest
import torch

import stages.pretrain
import stages.slic_training
from stages.io.checkpoint import load_checkpoint
from stages.io.run_folder import RunFolder
from stages.pretrain import PretrainConfig, PretrainResult
from stages.pretrain import run as pretrain
from stages.runtime.context import RunContext
from stages.runtime.errors import ConfigError
from stages.runtime.progress import SilentProgress
from stages.runtime.sections import DataConfig, WorkspaceConfig
from stages.slic_training import SlicTraining
from stages.training.monitor import MetricsLog
from tests.conftest import TINY_PRETRAIN

# A clustering round before each epoch, so the resumed epoch clusters the resumed weights.
ROUNDS_EVERY_EPOCH = {**TINY_PRETRAIN, "cluster_every": 1, "cluster_warmup_epochs": 0}


class Stopped(Exception):
    """Stands for a kill right after an epoch's checkpoint and record were written."""


@pytest.fixture(autouse=True)
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The PNG curves cost 4x the training here; tests/test_pretrain_plots.py draws them."""
    for module in (stages.pretrain, stages.slic_training):
        monkeypatch.setattr(module, "draw_plots", lambda records, folder: None)


@pytest.fixture(scope="module")
def workspace(motion_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the motion workspace's frames.h5 and flow.h5."""
    root = tmp_path_factory.mktemp("quick-pretrain")
    (root / "synthetic").mkdir()
    for name in ("frames.h5", "flow.h5"):
        shutil.copy(motion_workspace / "synthetic" / name, root / "synthetic" / name)
    return root


def train(workspace: Path, resume: bool = False, **settings) -> Path:
    return train_result(workspace, resume, **settings).run_folder


def train_result(workspace: Path, resume: bool = False, context: RunContext | None = None,
                 **settings) -> PretrainResult:
    config = PretrainConfig(**{**ROUNDS_EVERY_EPOCH, **settings})
    return pretrain(config, DataConfig(dataset="synthetic"),
                    WorkspaceConfig(root=str(workspace)), resume=resume, context=context)


def test_a_run_stopped_after_an_epoch_resumes_to_the_uninterrupted_weights(workspace,
                                                                            monkeypatch):
    straight = train(workspace, epochs=2, run_name="straight")
    written = SlicTraining.epoch_written

    def stop_after_first_epoch(task: SlicTraining, records: list) -> None:
        written(task, records)
        raise Stopped

    monkeypatch.setattr(SlicTraining, "epoch_written", stop_after_first_epoch)
    with pytest.raises(Stopped):
        train(workspace, epochs=2, run_name="resumed")
    stopped = load_checkpoint(RunFolder(straight.parent / "resumed").checkpoint)
    assert stopped["epoch"] == 1  # the next epoch to train
    monkeypatch.setattr(SlicTraining, "epoch_written", written)
    resumed = train(workspace, resume=True, epochs=2, run_name="resumed")

    first, second = (load_checkpoint(RunFolder(f).checkpoint) for f in (straight, resumed))
    assert first["epoch"] == second["epoch"] == 2
    assert first["model"].keys() == second["model"].keys()
    for name, weights in first["model"].items():
        assert torch.equal(weights, second["model"][name]), name
    assert torch.equal(first["clusters"], second["clusters"])
    records = [MetricsLog(RunFolder(f).metrics).records() for f in (straight, resumed)]
    assert [r["epoch"] for r in records[1]] == [0, 1, 2]  # no epoch trained twice
    for mine, theirs in zip(*records):
        assert mine.get("loss") == theirs.get("loss")
        assert mine.get("num_clusters") == theirs.get("num_clusters")


def test_no_loader_worker_outlives_the_run_that_it_fed(workspace: Path) -> None:
    """Workers left to the garbage collector stop 5 s each, whenever it runs; so none may be
    left alive when pretraining returns or raises, with the collector off meanwhile."""
    gc.collect()
    before = set(multiprocessing.active_children())
    gc.disable()
    try:
        train(workspace, epochs=1, run_name="workers", workers=2)
        assert set(multiprocessing.active_children()) == before

        tasks: list[SlicTraining] = []  # held, so that only fit's own cleanup can stop them

        def broken(task: SlicTraining, *_: object) -> None:
            tasks.append(task)
            raise Stopped

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(SlicTraining, "step", broken)
            with pytest.raises(Stopped):
                train(workspace, epochs=1, run_name="workers-stopped", workers=2)
        assert tasks and tasks[0].loader is None
        assert set(multiprocessing.active_children()) == before
    finally:
        gc.enable()


def test_true_classes_as_clusters_mine_no_false_pair(workspace):
    """With the true classes as pseudo-labels and every positive from a cluster-mate, a
    positive of another class or a negative of the anchor's class can only come from labels
    handed to the wrong videos."""
    folder = train(workspace, epochs=1, run_name="supervised", pseudo_labels="labels",
                   p_alpha=0.0)
    (record,) = [r for r in MetricsLog(RunFolder(folder).metrics).records() if r["epoch"] == 0]
    assert record["triplets_per_step"] > 0
    assert record["positive_fp_rate"] == 0.0 and record["negative_fn_rate"] == 0.0


def test_the_same_run_asked_again_is_up_to_date_and_a_changed_one_is_refused(workspace):
    settings = {"epochs": 1, "run_name": "again", "pseudo_labels": "none"}
    first = train_result(workspace, **settings)
    before = RunFolder(first.run_folder).checkpoint.read_bytes()
    again = train_result(workspace, **settings)
    assert (first.status, again.status) == ("trained", "up to date")
    assert again.final["loss"] == first.final["loss"]
    assert RunFolder(first.run_folder).checkpoint.read_bytes() == before
    with pytest.raises(ConfigError, match=r"pretrain.margin was 0.2, now 0.3.*--resume.*--force"):
        train_result(workspace, **settings, margin=0.3)
    with pytest.raises(ConfigError, match=r"pretrain.epochs was 1, now 2.*--resume"):
        train_result(workspace, **{**settings, "epochs": 2})


class Messages(SilentProgress):
    def __init__(self) -> None:
        self.said: list[str] = []

    def message(self, text: str) -> None:
        self.said.append(text)


def test_the_collapse_warning_is_given_once_a_run(workspace, monkeypatch):
    """Two clustering rounds and an evaluation, each measuring collapse: one warning, with
    where to see every round's measures."""
    monkeypatch.setattr(stages.slic_training, "collapse_warning",
                        lambda health, dim: "collapsing")
    said = Messages()
    train_result(workspace, epochs=1, run_name="collapsing", context=RunContext(progress=said))
    warnings = [text for text in said.said if text.startswith("warning: collapsing")]
    assert len(warnings) == 1 and "collapse.png" in warnings[0]
