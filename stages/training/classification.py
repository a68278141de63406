"""Training a video classifier on a backbone, shared by `finetune` (end to end) and the
linear probe of the paper's code (`linear-probe --protocol windows`: only the linear layer
learns, the whole model stays in eval mode, so BatchNorm is frozen and dropout is off).

Training clips are random augmented windows (CoCLR's augmentation, as the paper's code);
best.pt is chosen on a validation share carved from the training videos, never on the test
split; the test averages the softmax over `windows` x `crops` views of every video. The epoch
loop, checkpoints, device, AMP and DDP are the training spine's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from stages import __version__
from stages.clips.fixed_windows import EvaluationClips
from stages.clips.labelled import LabelledClips
from stages.clips.store import ClipStore
from stages.clips.triplets import EpochSampler
from stages.datasets.base import split_caveats
from stages.evaluation.classification import (
    confusion_matrix,
    draw_confusion,
    per_class_accuracy,
    top_k_accuracy,
)
from stages.evaluation.sources import EncoderSource
from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.io.run_folder import RunFolder
from stages.runtime.context import RunContext
from stages.runtime.errors import ConfigError, TrainingDiverged
from stages.runtime.run_lock import run_folder_lock
from stages.training.compute import Compute
from stages.training.embedding import embed_clips
from stages.training.loading import clip_loader, stop_workers, training_workers
from stages.training.monitor import MetricsLog
from stages.training.schedule import build_schedule, lr_factor, paper_drop_epochs
from stages.training.trainer import StepResult, Trainer
from stages.training.video_split import hold_out_groups, split_rows


class VideoClassifier(nn.Module):
    """backbone -> dropout -> linear. `forward` gives logits (B, C); `embed` softmax (B, C).

    With `frozen` the backbone gets no gradients and the whole model stays in eval mode.
    """

    def __init__(self, backbone: nn.Module, classes: int, dropout: float,
                 frozen: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.feature_dim, classes)
        self.frozen = frozen
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)
        if frozen:
            self.backbone.requires_grad_(False)
            super().train(False)

    def train(self, mode: bool = True) -> VideoClassifier:
        """Set training mode, except that a frozen classifier stays in eval mode (BatchNorm
        statistics fixed, no dropout)."""
        return super().train(mode and not self.frozen)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, C) logits."""
        if self.frozen:
            with torch.no_grad():
                features = self.backbone(clips)
            return self.fc(features)
        return self.fc(self.dropout(self.backbone(clips)))

    def embed(self, clips: torch.Tensor, feature: str = "probabilities") -> torch.Tensor:
        """(B, C) float32 class probabilities of (B, 3, T, H, W) clips; `feature` is accepted for
        `embed_clips` and ignored."""
        return torch.softmax(self(clips).float(), dim=-1)


@dataclass(frozen=True, kw_only=True)
class ClassifierRecipe:
    """What a stage decides about training its classifier (built with keywords only)."""

    stage: str  # config section and folder name: finetune, linear-probe
    frozen: bool
    epochs: int
    batch_size: int
    lr: float  # of the linear layer
    backbone_lr: float  # ignored when frozen
    weight_decay: float
    dropout: float
    val_fraction: float
    windows: int
    crops: int
    seed: int
    workers: int | str  # loader workers, or auto
    config: dict[str, Any]  # the output-relevant settings kept in the checkpoint
    resumable: tuple[str, ...]


@dataclass
class ClassifierOutcome:
    """What training and testing a classifier gave: status, test top-1/top-5 of best.pt, its epoch,
    accuracy per class, video counts, class names, the (C, C) confusion matrix and what about
    the split makes the figures mean little."""

    status: str
    top1: float
    top5: float
    best_epoch: int
    per_class: list[dict[str, Any]]
    num_train: int
    num_test: int
    class_names: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the split (`split_caveats`)


class ClassifierTraining:
    """The TrainingTask of a classifier: labelled clips, cross-entropy, validation after each
    epoch and best.pt by validation top-1."""

    def __init__(self, recipe: ClassifierRecipe, model: VideoClassifier, store: ClipStore,
                 train: np.ndarray, val: np.ndarray, source: EncoderSource,
                 compute: Compute, context: RunContext) -> None:
        self.recipe, self.model, self.store = recipe, model, store
        self.val, self.source, self.compute, self.context = val, source, compute, context
        self.labels = store.table.columns["label"].astype(np.int64)
        self.dataset = LabelledClips(store, train, source.clip["clip_length"],
                                     source.clip["stride"], source.clip["crop_size"],
                                     recipe.seed)
        self.best: dict[str, Any] = {"epoch": -1, "accuracy": -1.0}
        self.sampler = EpochSampler(len(self.dataset), recipe.seed, compute.distribution.rank,
                                    compute.distribution.world)
        self.loader: DataLoader | None = None

    def batches(self, epoch: int) -> DataLoader:
        """This rank's labelled batches of `epoch` (one loader whose workers live on from epoch
        to epoch); torch's global generator is seeded per (seed, epoch, rank) so dropout
        repeats on resume."""
        d = self.compute.distribution
        if self.loader is None:
            self.loader = clip_loader(
                self.dataset, self.sampler, batch_size=self.recipe.batch_size // d.world,
                workers=training_workers(self.recipe.workers, self.compute.device),
                pin_memory=self.compute.device.type == "cuda", drop_last=True)
        self.sampler.set_epoch(epoch)
        # Dropout draws from the global generator: seed it per epoch and rank for exact resumes.
        torch.manual_seed(int(np.random.SeedSequence([self.recipe.seed, epoch, d.rank])
                              .generate_state(1)[0]))
        return self.loader

    def step(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], epoch: int,
             step: int) -> StepResult:
        """Float32 cross-entropy of one (clips, labels) batch, the forward pass under autocast."""
        clips, targets = batch
        with self.compute.autocast():
            logits = model(self.compute.prepare_clips(clips))
        targets = targets.to(self.compute.device, non_blocking=True)
        loss = nn.functional.cross_entropy(logits.float(), targets)
        return StepResult(loss)

    def before_epoch(self, epoch: int) -> dict[str, Any]:
        """Nothing happens before an epoch here; no figures."""
        return {}

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
        """Validation top-1 on the val share's centre clips; saves best.pt when it improves and
        raises TrainingDiverged on NaN/Inf predictions. Without a val share (val_fraction 0)
        best.pt is the last epoch's."""
        if len(self.val) == 0:
            self.best = {"epoch": epoch, "accuracy": None}
            self._save_best(epoch)
            return {}
        probabilities = self.probabilities(self.val, 1, 1)
        if not np.isfinite(probabilities).all():
            raise TrainingDiverged(
                f"{self.recipe.stage} predictions became NaN/Inf after epoch {epoch}: the "
                f"weights blew up; the last good checkpoint is kept in {self.folder}; lower "
                f"{self.recipe.stage.replace('-', '_')}.lr and pass --resume")
        accuracy = top_k_accuracy(probabilities, self.labels[self.val], 1)
        if accuracy > self.best["accuracy"]:
            self.best = {"epoch": epoch, "accuracy": accuracy}
            self._save_best(epoch)
        return {"val_top1": accuracy}

    def _save_best(self, epoch: int) -> None:
        """best.pt: the classifier's weights after `epoch` (rank 0 writes)."""
        if self.compute.distribution.is_main:
            save_checkpoint({"model": self.model.state_dict(), "epoch": epoch,
                             "classes": list(self.store.table.class_names),
                             "config": self.recipe.config, "slic_version": __version__},
                            RunFolder(self.folder).best)

    def summarise(self, totals: dict[str, float], steps: int, seconds: float
                  ) -> dict[str, Any]:
        """The epoch's record: the mean loss per batch and the seconds taken."""
        return {"loss": totals.get("loss", 0.0) / max(steps * self.compute.distribution.world, 1),
                "seconds": seconds}

    def extra_state(self) -> dict[str, Any]:
        """The best epoch and its validation top-1, for checkpoint.pt."""
        return {"best": self.best}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back the best epoch and its validation top-1 of a resumed checkpoint."""
        self.best = state["best"]

    def epoch_written(self, records: list[dict[str, Any]]) -> None:
        """Nothing to do after an epoch is written: a classifier draws no plots."""
        return None

    def close(self) -> None:
        """Stop the loader's workers: the epochs are over (or stopped by an error)."""
        stop_workers(self.loader)
        self.loader = None

    @property
    def folder(self) -> Path:
        """The results folder, which is the encoder source's."""
        return self.source.folder

    def probabilities(self, rows: np.ndarray, windows: int, crops: int) -> np.ndarray:
        """(N, C) softmax averaged over each video's windows x crops views."""
        clip = self.source.clip
        clips = EvaluationClips(self.store, rows, clip["clip_length"], clip["stride"],
                                clip["crop_size"], windows, crops)
        return embed_clips(self.model, clips, feature="probabilities", batch_size=16, amp=True,
                           workers=self.recipe.workers, compute=self.compute,
                           progress=self.context.progress)


def classifier_split(store: ClipStore, split: int, val_fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (train, val, test) of official split `split`: val is a seeded share of the
    training videos, whole groups at a time (`hold_out_groups`); empty for val_fraction 0."""
    train, test = split_rows(store, split)
    if len(test) == 0:
        raise ConfigError(f"{store.frames_path} has no test videos in split {split}; set "
                          "data.split")
    train, val = hold_out_groups(train, store.table.columns["video_id"], val_fraction,
                                 np.random.Generator(np.random.PCG64([seed, 2])))
    return train, val, test


def train_classifier(recipe: ClassifierRecipe, source: EncoderSource, split: int,
                     compute: Compute, context: RunContext, resume: bool) -> ClassifierOutcome:
    """Train (or resume) the classifier of `recipe` on `source`, then test best.pt."""
    store = ClipStore(source.frames)
    train, val, test = classifier_split(store, split, recipe.val_fraction, recipe.seed)
    world = compute.distribution.world
    if recipe.batch_size // world < 1 or recipe.batch_size > len(train):
        raise ConfigError(f"{recipe.stage.replace('-', '_')}.batch_size {recipe.batch_size} "
                          f"does not fit {len(train)} training videos on {world} ranks")
    torch.manual_seed(recipe.seed)
    classes = len(store.table.class_names)
    model = VideoClassifier(source.encoder.backbone, classes, recipe.dropout, recipe.frozen)
    model = model.to(compute.device, memory_format=compute.memory_format)
    groups = [{"params": model.fc.parameters(), "lr": recipe.lr}]
    if not recipe.frozen:
        groups.insert(0, {"params": model.backbone.parameters(), "lr": recipe.backbone_lr})
    optimiser = torch.optim.Adam(groups, weight_decay=recipe.weight_decay)
    steps = len(train) // world // (recipe.batch_size // world)
    scheduler = build_schedule(optimiser, lr_factor(recipe.epochs, steps,
                                                    drop_epochs=paper_drop_epochs(recipe.epochs)))
    trainer = Trainer(recipe.stage, compute, model, optimiser, scheduler,
                      [group["lr"] for group in groups], recipe.config, recipe.resumable,
                      source.folder)
    task = ClassifierTraining(recipe, model, store, train, val, source, compute, context)
    with run_folder_lock(source.folder, trainer.is_main):
        outcome = _train_and_test(task, trainer, test, len(train), resume)
    names = list(store.table.class_names)
    outcome.warnings = split_caveats([names[c] for c in task.labels[train]],
                                     [names[c] for c in task.labels[test]], names)
    return outcome


def _train_and_test(task: ClassifierTraining, trainer: Trainer, test: np.ndarray,
                    num_train: int, resume: bool) -> ClassifierOutcome:
    source, context, recipe = task.source, task.context, task.recipe
    files = RunFolder(source.folder)
    log = MetricsLog(files.metrics)
    state = trainer.begin(resume, context.force, [files.best, log.path],
                          context.progress)
    start = 0
    if state is not None:
        task.restore(state)
        start = state["epoch"]
    if trainer.is_main:
        source.folder.mkdir(parents=True, exist_ok=True)
        log.path.touch()
        note = log.keep_before(start)
        if note:
            context.progress.message(note)
    trainer.fit(task, start, recipe.epochs, log, context.progress)
    return _test(task, test, "trained" if start < recipe.epochs else "up to date", num_train)


def _test(task: ClassifierTraining, test: np.ndarray, status: str, num_train: int
          ) -> ClassifierOutcome:
    """Top-1/top-5 of best.pt on the test split, softmax averaged over windows x crops."""
    task.model.load_state_dict(load_checkpoint(RunFolder(task.folder).best)["model"])
    probabilities = task.probabilities(test, task.recipe.windows, task.recipe.crops)
    truth = task.labels[test]
    names = list(task.store.table.class_names)
    matrix = confusion_matrix(probabilities.argmax(axis=1), truth, len(names))
    return ClassifierOutcome(status, top_k_accuracy(probabilities, truth, 1),
                             top_k_accuracy(probabilities, truth, min(5, len(names))),
                             int(task.best["epoch"]), per_class_accuracy(matrix, names),
                             num_train, len(test), names, matrix.tolist())


def write_results(folder: Path, summary: dict[str, Any], confusion: list[list[int]],
                  class_names: list[str], title: str, context: RunContext) -> None:
    """results.json and confusion.png of an evaluation (rank 0 only)."""
    files = RunFolder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    draw_confusion(np.asarray(confusion), class_names, files.confusion, title)
    temporary = files.results.with_name(f".{files.results.name}.writing")
    temporary.write_text(json.dumps({**summary, "confusion": confusion,
                                     "command": context.command, "config": context.config},
                                    indent=1))
    os.replace(temporary, files.results)
