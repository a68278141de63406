"""pretrain: SLIC training with iterative clustering, multi-view positives and checkpoints.

Every random choice is a function of (seed, epoch, step or video), so a run killed at any point
and resumed from its last checkpoint ends with the same weights as an uninterrupted one (CPU).
The epoch loop, checkpoints, device, AMP and DDP are the shared training spine's
(`stages.training.trainer`, `stages.training.compute`); this module holds what is SLIC's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.clips.store import ClipStore
from stages.clips.triplets import TripletClips
from stages.io.artifacts import StoredFeatures, artifact_input
from stages.io.checkpoint import save_checkpoint
from stages.io.run_folder import (
    RunFolder,
    record_features,
    write_config,
)
from stages.models.encoder import Encoder, load_encoder_weights
from stages.pretrain_config import RESUMABLE_CHANGES, PretrainConfig
from stages.runtime.context import RunContext, now
from stages.runtime.errors import ConfigError, TrainingDiverged
from stages.runtime.run_lock import run_folder_lock
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant
from stages.runtime.workspace import flow_path, frames_path, runs_folder
from stages.slic_training import SlicTraining, has_labels, mining_group, triplet_settings
from stages.training.compute import Compute, computing
from stages.training.loggers import LoggedEmbeddings, open_logger, require_logger
from stages.training.monitor import MetricsLog, draw_plots
from stages.training.schedule import build_schedule, lr_factor
from stages.training.trainer import Trainer
from stages.training.video_split import TrainingVideos, select_training_videos

__all__ = ["PretrainConfig", "PretrainResult", "TrainingDiverged", "run"]


@dataclass
class PretrainResult:
    """What `pretrain.run` did: the run folder, whether it trained or was up to date, its epochs and
    its final metrics."""

    run_folder: Path
    status: str  # "trained", "up to date"
    epochs: int
    final: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `run_folder`, `status`, `epochs`, the final
        metrics (`loss`, `r1`, `r5`, `val_r1`, `nmi`, `ami`, `num_clusters`,
        `largest_cluster_share`, `mean_cosine`, `effective_rank` where recorded,
        `train_videos`, `short_videos_skipped`) and `seconds`."""
        return {"stage": "pretrain", "run_folder": str(self.run_folder), "status": self.status,
                "epochs": self.epochs, **self.final, "seconds": round(self.seconds, 3)}


def build_training(settings: PretrainConfig, data: DataConfig, workspace: WorkspaceConfig, *,
                   context: RunContext, compute: Compute, frames: Path | None,
                   flow: Path | None) -> tuple[SlicTraining, Trainer]:
    """The SLIC task (items, step, rounds) and the trainer (optimiser, schedule, checkpoints)
    of a run, ready for `Trainer.fit`; public so that benchmarks can drive or observe the
    very training `run` does."""
    frames = Path(frames) if frames else frames_path(workspace, data)
    flow_file = None
    if settings.multiview:
        flow_file = Path(flow) if flow else flow_path(workspace, data)
        if not flow_file.is_file():
            raise ConfigError(f"{flow_file} does not exist: multi-view training needs flow; "
                              "run slic compute-flow, pass --flow, or set pretrain.multiview="
                              "false")
    store = ClipStore(frames, flow_file)
    videos = select_training_videos(store, data.split, settings, context.progress)
    unmeasured = unmeasured_without_labels(videos, settings, frames, data.split)
    if unmeasured:
        context.progress.message(unmeasured)
    world = compute.distribution.world
    per_rank = settings.batch_size // world
    if per_rank < 2 or per_rank * world > len(videos.train):
        raise ConfigError(f"pretrain.batch_size {settings.batch_size} does not fit: it needs "
                          f"at least 2 items per rank ({world} ranks) and at most "
                          f"{len(videos.train)} training videos")
    mining_group(settings, world)
    torch.manual_seed(settings.seed)
    encoder = Encoder(settings.arch, settings.projection_hidden, settings.projection_dim)
    if settings.init:
        load_encoder_weights(encoder, Path(settings.init))
    encoder = encoder.to(compute.device, memory_format=compute.memory_format)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=settings.lr,
                                momentum=settings.momentum, weight_decay=settings.weight_decay)
    steps = len(videos.train) // world // per_rank
    scheduler = build_schedule(optimizer, lr_factor(settings.epochs, steps, settings.schedule,
                                                    settings.warmup_epochs))
    triplets = TripletClips(store, videos.train, triplet_settings(settings, compute.device),
                            settings.seed)
    name = settings.run_name or f"{settings.arch}-{settings.pseudo_labels}"
    folder = RunFolder(runs_folder(workspace, data) / name)
    inputs = [artifact_input(p) for p in [frames, flow_file] if p is not None]
    task = SlicTraining(settings, context, compute, videos, store, encoder, triplets, folder,
                        inputs)
    trainer = Trainer("pretrain", compute, encoder, optimizer, scheduler, [settings.lr],
                      output_relevant(settings), RESUMABLE_CHANGES, folder.path)
    return task, trainer


def unmeasured_without_labels(videos: TrainingVideos, settings: PretrainConfig, frames: Path,
                              split: int) -> str | None:
    """What the run cannot measure for want of labels or test videos, as the one line to
    tell the user (None: everything is measured). Settings that need labels are refused."""
    if not has_labels(videos):
        for key, value, fix in (("pseudo_labels", "labels", "finch, kmeans or none"),
                                ("best_by", "val", "last")):
            if getattr(settings, key) == value:
                raise ConfigError(f"pretrain.{key} {value} needs labelled videos and those of "
                                  f"{frames} are unlabelled; set pretrain.{key} to {fix}")
        return (f"the videos of {frames} are unlabelled: kNN R@k, NMI/AMI and the false "
                "positive rates are not measured; the run monitors the collapse measures and "
                "the clusters (count and sizes in assignments.h5 and the report)")
    if len(videos.test) == 0:
        return (f"split {split} of {frames} has no test videos: kNN R@k is not measured "
                "(a folder dataset holds data.test_ratio of each class out for test)")
    return None


def run(settings: PretrainConfig, data: DataConfig, workspace: WorkspaceConfig, *,
        context: RunContext | None = None, frames: Path | None = None,
        flow: Path | None = None, resume: bool = False,
        compute_settings: ComputeConfig | None = None) -> PretrainResult:
    """Train (or resume) a SLIC run; returns where it is and its final metrics."""
    context = (context or RunContext()).running(pretrain=settings, data=data,
                                                workspace=workspace,
                                                compute=compute_settings or ComputeConfig())
    clock = time.perf_counter()
    require_logger(settings.logger)
    with computing(compute_settings or ComputeConfig()) as compute:
        task, trainer = build_training(settings, data, workspace, context=context,
                                       compute=compute, frames=frames, flow=flow)
        if not task.folder.made_by_slic():  # checked before the lock file goes in
            raise ConfigError(f"{task.folder.path} exists and is not a slic run folder; choose "
                              "another pretrain.run_name (--run-name) or move that folder "
                              "away")
        with run_folder_lock(task.folder.path, compute.distribution.is_main):
            return _run(task, trainer, resume, clock)


def _run(task: SlicTraining, trainer: Trainer, resume: bool, clock: float) -> PretrainResult:
    s, folder, context = task.settings, task.folder, task.context
    outputs = [folder.best, folder.metrics, folder.assignments, folder.features]
    state = trainer.begin(resume, context.force, outputs, context.progress)
    start = 0
    if state is not None:
        task.restore(state)
        start = state["epoch"]
        if task.finished and start >= s.epochs:
            records = MetricsLog(folder.metrics).records()
            return PretrainResult(folder.path, "up to date", start,
                                  {**_videos_used(task), **_final_metrics(records)},
                                  time.perf_counter() - clock)
    log = MetricsLog(folder.metrics, open_logger(s.logger, folder.path, start)
                     if trainer.is_main else None)
    if trainer.is_main:
        write_config(folder, context.config)
        note = log.keep_before(start)
        if note:
            context.progress.message(note)
    try:
        trainer.fit(task, start, s.epochs, log, context.progress)
        final = {**_videos_used(task), **_finish(task, trainer, log)}
    finally:
        log.mirror.close()
    return PretrainResult(folder.path, "trained", s.epochs, final, time.perf_counter() - clock)


def _videos_used(task: SlicTraining) -> dict[str, int]:
    """How many training videos the run used, and how many short ones it left out."""
    return {"train_videos": len(task.videos.train),
            "short_videos_skipped": task.videos.skipped_short}


def _finish(task: SlicTraining, trainer: Trainer, log: MetricsLog) -> dict[str, Any]:
    """Final clustering of the trained embeddings, features.h5, best.pt and the last plots."""
    s, folder = task.settings, task.folder
    method = "kmeans" if s.pseudo_labels == "kmeans" else "finch"
    found, _, features = task.clustering(s.epochs, method)
    if trainer.is_main:
        v = task.videos
        stored = StoredFeatures(features, v.train_ids, v.train_labels,
                                np.full(len(v.train), "train", dtype=object), v.class_names,
                                "projection", {"checkpoint": str(folder.checkpoint),
                                               "epoch": s.epochs, "clip": "centre",
                                               "clip_length": s.clip_length,
                                               "crop_size": s.crop_size})
        record_features(folder, stored, task.context, task.inputs)
        if s.best_by == "last":
            save_checkpoint(task.weights(s.epochs - 1, "last", None), folder.best)
        task.finished, task.finished_at = True, now()
        trainer.save(s.epochs, **task.extra_state())
        assert found is not None
        log.append({"epoch": s.epochs, "final": True, **found.metrics})
        task.context.progress.row({"epoch": s.epochs, "final": True, **found.metrics})
        draw_plots(log.records(), folder.path)
        log.mirror.log_final(output_relevant(s), _final_metrics(log.records()), LoggedEmbeddings(
            features, [str(i) for i in v.train_ids],
            [v.class_names[c] if c >= 0 else "unlabelled" for c in v.train_labels],
            found.labels, s.epochs))
    return _final_metrics(log.records())


def _final_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's figures: last loss, last recall, final clusters' count, largest share
    and quality, and the last collapse measures (mean pairwise cosine, effective rank)."""
    final: dict[str, Any] = {}
    for record in records:
        for key in ("loss", "r1", "r5", "val_r1", "nmi", "ami", "num_clusters",
                    "largest_cluster_share", "mean_cosine", "effective_rank"):
            if record.get(key) is not None:
                value = record[key]
                final[key] = round(value, 4) if isinstance(value, float) else value
    return final
