"""finetune: end-to-end action classification from a pretrained (or random) backbone.

Defaults are the paper's code's: Adam with lr 1e-3 for the head and 1e-4 for the backbone,
weight decay 1e-3, dropout 0.9, lr x0.1 at 40% and 67% of the epochs; augmented training
clips; test by averaging the softmax over `windows` x `crops` views a video. best.pt is chosen
on a validation share carved from the training videos, never on the test split. Checkpoints
are atomic and every random choice derives from (seed, epoch, video or rank), so `--resume`
after a kill ends with the same weights; under torchrun the model is wrapped in DDP.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from stages import __version__
from stages.clips.evaluation import EvaluationClips
from stages.clips.labelled import LabelledClips
from stages.clips.store import ClipStore
from stages.clips.triplets import EpochSampler
from stages.errors import ConfigError, TrainingDiverged
from stages.evaluation.classification import (
    confusion_matrix,
    draw_confusion,
    per_class_accuracy,
    top_k_accuracy,
)
from stages.evaluation.sources import EncoderSource, encoder_source
from stages.finetune_config import FINETUNE_RESUMABLE, FinetuneConfig
from stages.pretrain_config import PretrainConfig
from stages.run_context import RunContext
from stages.settings import output_relevant
from stages.shared_config import DataConfig, WorkspaceConfig
from stages.training import distributed as dist_tools
from stages.training.checkpoint import load_checkpoint, save_checkpoint
from stages.training.embedding import configure_worker, embed_clips
from stages.training.monitor import MetricsLog
from stages.training.video_split import split_rows

__all__ = ["FinetuneConfig", "FinetuneResult", "VideoClassifier", "run"]


class VideoClassifier(nn.Module):
    """backbone -> dropout -> linear. `forward` gives logits (B, C); `embed` softmax (B, C)."""

    def __init__(self, backbone: nn.Module, classes: int, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.feature_dim, classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.backbone(clips)))

    def embed(self, clips: torch.Tensor, feature: str = "probabilities") -> torch.Tensor:
        return torch.softmax(self(clips).float(), dim=-1)


@dataclass
class FinetuneResult:
    folder: Path
    status: str
    top1: float
    top5: float
    best_epoch: int
    per_class: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"stage": "finetune", "folder": str(self.folder), "status": self.status,
                "top1": round(self.top1, 6), "top5": round(self.top5, 6),
                "best_epoch": self.best_epoch, "per_class": self.per_class,
                "seconds": round(self.seconds, 3)}


def _carve_validation(train: np.ndarray, fraction: float, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.Generator(np.random.PCG64([seed, 2])).permutation(len(train))
    count = max(1, int(round(fraction * len(train))))
    return np.sort(train[order[count:]]), np.sort(train[order[:count]])


def _accuracy(model: VideoClassifier, store: ClipStore, rows: np.ndarray, labels: np.ndarray,
              source: EncoderSource, windows: int, crops: int, workers: int,
              distribution: dist_tools.Distribution, context: RunContext) -> np.ndarray:
    """(N, C) softmax averaged over each video's views."""
    clips = EvaluationClips(store, rows, source.clip["clip_length"], source.clip["stride"],
                            source.clip["crop_size"], windows, crops)
    return embed_clips(model, clips, feature="probabilities", batch_size=16, workers=workers,
                       device=torch.device("cpu"), distribution=distribution,
                       progress=context.progress, autocast={"enabled": False})


def run(settings: FinetuneConfig, pretrain: PretrainConfig, data: DataConfig,
        workspace: WorkspaceConfig, context: RunContext | None = None,
        run_dir: Path | None = None, checkpoint: Path | None = None,
        random_init: bool = False, cross: str | None = None, resume: bool = False
        ) -> FinetuneResult:
    """Fine-tune, choose best.pt on the validation share, then test it."""
    context = context or RunContext()
    clock = time.perf_counter()
    distribution = dist_tools.start_distribution("cpu")
    try:
        source = encoder_source(pretrain, data, workspace, run_dir, checkpoint, random_init,
                                "finetune", cross)
        return _run(settings, data, source, context, resume, distribution, clock)
    finally:
        dist_tools.stop_distribution(distribution)


def _run(settings: FinetuneConfig, data: DataConfig, source: EncoderSource,
         context: RunContext, resume: bool, distribution: dist_tools.Distribution,
         clock: float) -> FinetuneResult:
    folder, store = source.folder, ClipStore(source.frames)
    train, test = split_rows(store, data.split)
    train, val = _carve_validation(train, settings.val_fraction, settings.seed)
    labels = store.table.columns["label"].astype(np.int64)
    classes = len(store.table.class_names)
    per_rank = settings.batch_size // distribution.world
    if per_rank < 1 or per_rank * distribution.world > len(train):
        raise ConfigError(f"finetune.batch_size {settings.batch_size} does not fit "
                          f"{len(train)} training videos on {distribution.world} ranks")
    torch.manual_seed(settings.seed)
    model = VideoClassifier(source.encoder.backbone, classes, settings.dropout)
    optimiser = torch.optim.Adam(
        [{"params": model.backbone.parameters(), "lr": settings.backbone_lr},
         {"params": model.fc.parameters(), "lr": settings.lr}],
        weight_decay=settings.weight_decay)
    milestones = [math.ceil(0.4 * settings.epochs), math.ceil(0.67 * settings.epochs)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, 0.1)
    state_path, best_path = folder / "checkpoint.pt", folder / "best.pt"
    log = MetricsLog(folder / "metrics.jsonl")
    start, best = 0, {"epoch": -1, "accuracy": -1.0}
    if state_path.is_file() and not resume and not context.force:
        raise ConfigError(f"{folder} already holds a fine-tuning checkpoint; pass --resume to "
                          "continue it or --force to start over")
    if resume and state_path.is_file():
        state = load_checkpoint(state_path)
        for key, value in state["config"].items():
            if key not in FINETUNE_RESUMABLE and output_relevant(settings).get(key) != value:
                raise ConfigError(f"cannot resume {state_path}: finetune.{key} was {value!r}")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best = state["epoch"], state["best"]
    if distribution.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        log.path.touch()
        log.keep_before(start)
    wrapped: nn.Module = DistributedDataParallel(model) if distribution.active else model
    dataset = LabelledClips(store, train, source.clip["clip_length"], source.clip["stride"],
                            source.clip["crop_size"], settings.seed)
    for epoch in range(start, settings.epochs):
        loss = _train_epoch(wrapped, optimiser, dataset, settings, epoch, distribution, context)
        scheduler.step()
        probabilities = _accuracy(model, store, val, labels, source, 1, 1, settings.workers,
                                  distribution, context)
        accuracy = top_k_accuracy(probabilities, labels[val], 1)
        if distribution.is_main:
            if accuracy > best["accuracy"]:
                best = {"epoch": epoch, "accuracy": accuracy}
                save_checkpoint({"model": model.state_dict(), "epoch": epoch,
                                 "classes": list(store.table.class_names),
                                 "config": output_relevant(settings),
                                 "slic_version": __version__}, best_path)
            save_checkpoint({"model": model.state_dict(), "optimizer": optimiser.state_dict(),
                             "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                             "best": best, "config": output_relevant(settings),
                             "torch_rng": torch.get_rng_state(), "slic_version": __version__},
                            state_path)
            record = {"epoch": epoch, "loss": loss, "val_top1": accuracy,
                      "lr": optimiser.param_groups[1]["lr"]}
            log.append(record)
            context.progress.row({"table": "finetune", **record})
        dist_tools.barrier(distribution)
    return _test(model, store, test, labels, source, settings, best, distribution, context,
                 folder, clock, "trained" if start < settings.epochs else "up to date")


def _train_epoch(model: nn.Module, optimiser: torch.optim.Optimizer, dataset: LabelledClips,
                 settings: FinetuneConfig, epoch: int, distribution: dist_tools.Distribution,
                 context: RunContext) -> float:
    dataset.set_epoch(epoch)
    sampler = EpochSampler(len(dataset), settings.seed, distribution.rank, distribution.world)
    sampler.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=settings.batch_size // distribution.world,
                        sampler=sampler, num_workers=settings.workers, drop_last=True,
                        worker_init_fn=configure_worker)
    # Dropout draws from the global generator: seed it per epoch and rank for exact resumes.
    torch.manual_seed(int(np.random.SeedSequence([settings.seed, epoch, distribution.rank])
                          .generate_state(1)[0]))
    model.train()
    total, steps = 0.0, len(loader)
    if distribution.is_main:
        context.progress.start(f"finetune epoch {epoch + 1}/{settings.epochs}", steps)
    for clips, targets in loader:
        loss = nn.functional.cross_entropy(model(clips), targets)
        value = float(dist_tools.sum_across(loss.detach().reshape(1), distribution)[0])
        if not math.isfinite(value):
            raise TrainingDiverged(f"fine-tuning loss became {value} at epoch {epoch}; the "
                                   "last good checkpoint is kept; lower finetune.lr")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += value / distribution.world
        if distribution.is_main:
            context.progress.advance()
    if distribution.is_main:
        context.progress.finish()
    return total / max(steps, 1)


def _test(model: VideoClassifier, store: ClipStore, test: np.ndarray, labels: np.ndarray,
          source: EncoderSource, settings: FinetuneConfig, best: dict[str, Any],
          distribution: dist_tools.Distribution, context: RunContext, folder: Path,
          clock: float, status: str) -> FinetuneResult:
    """Top-1/top-5 of best.pt on the test split, softmax averaged over windows x crops."""
    dist_tools.barrier(distribution)
    model.load_state_dict(load_checkpoint(folder / "best.pt")["model"])
    probabilities = _accuracy(model, store, test, labels, source, settings.windows,
                              settings.crops, settings.workers, distribution, context)
    truth = labels[test]
    classes = len(store.table.class_names)
    matrix = confusion_matrix(probabilities.argmax(axis=1), truth, classes)
    result = FinetuneResult(folder, status, top_k_accuracy(probabilities, truth, 1),
                            top_k_accuracy(probabilities, truth, min(5, classes)),
                            int(best["epoch"]),
                            per_class_accuracy(matrix, list(store.table.class_names)))
    result.seconds = time.perf_counter() - clock
    if distribution.is_main:
        draw_confusion(matrix, list(store.table.class_names), folder / "confusion.png",
                       f"fine-tuned, top-1 {result.top1:.3f}")
        temporary = folder / ".results.json.writing"
        temporary.write_text(json.dumps({**result.summary(), "confusion": matrix.tolist(),
                                         "command": context.command}, indent=1))
        os.replace(temporary, folder / "results.json")
    return result
