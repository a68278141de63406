"""pretrain: SLIC training with iterative clustering, multi-view positives and checkpoints.

Every random choice is a function of (seed, epoch, step or video), so a run killed at any point
and resumed from its last checkpoint ends with the same weights as an uninterrupted one (CPU).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from stages import __version__
from stages.clips.augment import AugmentSettings
from stages.clips.evaluation import EvaluationClips
from stages.clips.store import ClipStore
from stages.clips.triplets import EpochSampler, TripletClips, TripletSettings
from stages.errors import ConfigError, TrainingDiverged
from stages.evaluation.retrieval import retrieval_recall
from stages.io.artifacts import StoredFeatures, artifact_input
from stages.models.encoder import Encoder, load_encoder_weights
from stages.pretrain_config import RESUMABLE_CHANGES, PretrainConfig
from stages.run_context import RunContext
from stages.settings import output_relevant
from stages.shared_config import DataConfig, WorkspaceConfig
from stages.training import distributed as dist_tools
from stages.training.checkpoint import load_checkpoint, save_checkpoint
from stages.training.embedding import configure_worker, embed_clips
from stages.training.monitor import MetricsLog, draw_plots
from stages.training.rounds import (
    ClusteringRound,
    clustering_round,
    fixed_labels,
    labels_digest,
)
from stages.training.run_folder import (
    RunFolder,
    record_features,
    record_round,
    write_config,
)
from stages.training.slic_step import LossSettings, slic_step, step_generator
from stages.training.video_split import TrainingVideos, select_training_videos
from stages.workspace import flow_path, frames_path, runs_folder

__all__ = ["PretrainConfig", "PretrainResult", "TrainingDiverged", "run"]


@dataclass
class PretrainResult:
    run_folder: Path
    status: str  # "trained", "up to date"
    epochs: int
    final: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"stage": "pretrain", "run_folder": str(self.run_folder), "status": self.status,
                "epochs": self.epochs, **self.final, "seconds": round(self.seconds, 3)}


@dataclass
class Machinery:
    """Everything the epoch loop uses, built once."""

    settings: PretrainConfig
    context: RunContext
    distribution: dist_tools.Distribution
    device: torch.device
    autocast: dict[str, Any]
    memory_format: torch.memory_format
    videos: TrainingVideos
    store: ClipStore
    encoder: Encoder
    model: torch.nn.Module  # the encoder, wrapped in DDP when distributed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    triplets: TripletClips
    folder: RunFolder
    inputs: list[dict[str, Any]]


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("pretrain.device is cuda but no CUDA device is available; use auto "
                          "or cpu")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def _autocast(amp: str, device: torch.device) -> dict[str, Any]:
    if device.type != "cuda" or amp == "off":
        return {"enabled": False}
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return {"dtype": torch.float16}
    return {"dtype": torch.bfloat16}


def _lr_factor(settings: PretrainConfig, steps_per_epoch: int):
    total, warmup = settings.epochs * steps_per_epoch, settings.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if settings.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))
        return 1.0

    return factor


def _build(settings: PretrainConfig, data: DataConfig, workspace: WorkspaceConfig,
           context: RunContext, frames: Path | None, flow: Path | None) -> Machinery:
    device = _device(settings.device)
    distribution = dist_tools.start_distribution(device.type)
    if device.type == "cuda":
        device = torch.device(distribution.device if distribution.active else "cuda")
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
    world = distribution.world
    per_rank = settings.batch_size // world
    if per_rank < 2 or per_rank * world > len(videos.train):
        raise ConfigError(f"pretrain.batch_size {settings.batch_size} does not fit: it needs "
                          f"at least 2 items per rank ({world} ranks) and at most "
                          f"{len(videos.train)} training videos")
    torch.manual_seed(settings.seed)
    encoder = Encoder(settings.arch, settings.projection_hidden, settings.projection_dim)
    if settings.init:
        load_encoder_weights(encoder, Path(settings.init))
    memory_format = torch.channels_last_3d if device.type == "cuda" else torch.contiguous_format
    encoder = encoder.to(device, memory_format=memory_format)
    model: torch.nn.Module = encoder
    if distribution.active:
        model = DistributedDataParallel(
            encoder, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=settings.lr,
                                momentum=settings.momentum, weight_decay=settings.weight_decay)
    steps = len(videos.train) // world // per_rank
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(settings, steps))
    autocast = _autocast(settings.amp, device)
    scaler = torch.amp.GradScaler(device.type,
                                  enabled=autocast.get("dtype") is torch.float16)
    triplet_settings = TripletSettings(
        settings.clip_length, settings.stride, settings.anchor, settings.p_alpha, settings.p_beta,
        settings.multiview, settings.flow_channel,
        AugmentSettings(settings.crop_size, settings.min_crop_area, settings.jitter,
                        settings.hue))
    triplets = TripletClips(store, videos.train, triplet_settings, settings.seed)
    name = settings.run_name or f"{settings.arch}-{settings.pseudo_labels}"
    folder = RunFolder(runs_folder(workspace, data) / name)
    inputs = [artifact_input(p) for p in [frames, flow_file] if p is not None]
    return Machinery(settings, context, distribution, device, autocast, memory_format, videos,
                     store, encoder, model, optimizer, scheduler, scaler, triplets, folder,
                     inputs)


def _check_resumable(stored: dict[str, Any], settings: PretrainConfig, path: Path) -> None:
    now_values = output_relevant(settings)
    for key, value in stored.items():
        if key not in RESUMABLE_CHANGES and key in now_values and now_values[key] != value:
            raise ConfigError(f"cannot resume {path}: pretrain.{key} was {value!r} and is now "
                              f"{now_values[key]!r}; restore it or start a new run "
                              "(--run-name)")


def _embed(m: Machinery, videos: np.ndarray, feature: str = "projection") -> np.ndarray:
    s = m.settings
    clips = EvaluationClips(m.store, videos, s.clip_length, s.stride, s.crop_size)
    return embed_clips(m.encoder, clips, feature=feature, batch_size=max(s.batch_size, 8),
                       workers=s.workers, device=m.device, distribution=m.distribution,
                       progress=m.context.progress, autocast=m.autocast)


def _clustering(m: Machinery, epoch: int, method: str | None = None
                ) -> tuple[ClusteringRound | None, np.ndarray, np.ndarray]:
    """Embed the training videos and, on rank 0, cluster them; labels reach every rank.

    Returns rank 0's round (None elsewhere), the (N,) labels and the (N, D) features.
    """
    s = m.settings
    features = _embed(m, m.videos.train)
    found = None
    if m.distribution.is_main:
        found = clustering_round(epoch, features, m.videos.train_labels, m.videos.train_ids,
                                 method or s.pseudo_labels, s.partition, s.num_clusters,
                                 s.cluster_nn, s.seed, s.official_label_shift)
        record_round(m.folder, found, m.context, m.inputs)
    labels = dist_tools.broadcast_labels(None if found is None else found.labels,
                                         len(m.videos.train), m.distribution)
    agree = dist_tools.all_agree(labels_digest(labels), m.distribution)
    if found is not None:
        found.metrics["ranks_agree"] = agree
    return found, labels, features


def _evaluate(m: Machinery) -> dict[str, float]:
    """Test-to-train (and val-to-train) kNN recall on centre clips."""
    record: dict[str, float] = {}
    v = m.videos
    if len(v.test) == 0 and len(v.val) == 0:
        return record
    gallery = _embed(m, v.train)
    if len(v.test):
        recall = retrieval_recall(_embed(m, v.test), v.test_labels, gallery, v.train_labels,
                                  (1, 5))
        record.update(r1=recall[1], r5=recall[5])
    if len(v.val):
        recall = retrieval_recall(_embed(m, v.val), v.val_labels, gallery, v.train_labels, (1,))
        record["val_r1"] = recall[1]
    return record


def _train_epoch(m: Machinery, epoch: int) -> dict[str, Any]:
    s, d = m.settings, m.distribution
    m.triplets.set_epoch(epoch)
    sampler = EpochSampler(len(m.triplets), s.seed, d.rank, d.world)
    sampler.set_epoch(epoch)
    loader = DataLoader(m.triplets, batch_size=s.batch_size // d.world, sampler=sampler,
                        num_workers=s.workers, drop_last=True, worker_init_fn=configure_worker,
                        pin_memory=m.device.type == "cuda")
    m.model.train()
    totals = np.zeros(8)  # loss, triplet, temporal, triplets, fallbacks, fp, fn, labelled
    clock, steps = time.perf_counter(), len(loader)
    if d.is_main:
        m.context.progress.start(f"epoch {epoch + 1}/{s.epochs}", steps)
    for step, batch in enumerate(loader):
        outcome = slic_step(m.model, batch, m.videos.train_labels,
                            LossSettings(s.margin, s.temporal_loss, s.temporal_margin,
                                         s.temporal_weight, s.official_fallback_bug),
                            step_generator(s.seed, epoch, step, d.rank), m.device, m.autocast,
                            m.memory_format)
        loss_value = outcome.loss.detach().float().cpu()
        stats = torch.tensor([float(loss_value), outcome.triplet, outcome.temporal,
                              outcome.triplets, outcome.fallbacks, outcome.false_positives,
                              outcome.false_negatives, outcome.labelled], dtype=torch.float64)
        stats = dist_tools.sum_across(stats, d)
        if not math.isfinite(stats[0].item()):
            raise TrainingDiverged(
                f"loss became {stats[0].item()} at epoch {epoch} step {step}; the last good "
                f"checkpoint is kept in {m.folder.path}; lower pretrain.lr (now {s.lr}) or "
                "check the input data")
        m.optimizer.zero_grad(set_to_none=True)
        m.scaler.scale(outcome.loss).backward()
        m.scaler.step(m.optimizer)
        m.scaler.update()
        m.scheduler.step()
        totals += stats.numpy()
        if d.is_main:
            m.context.progress.advance()
    if d.is_main:
        m.context.progress.finish()
    seconds = time.perf_counter() - clock
    per_step = totals / max(steps * d.world, 1)
    labelled = totals[7]
    return {
        "loss": per_step[0], "triplet_loss": per_step[1], "temporal_loss": per_step[2],
        "triplets_per_step": per_step[3], "fallback_rate": totals[4] / max(totals[3], 1),
        "positive_fp_rate": totals[5] / labelled if labelled else None,
        "negative_fn_rate": totals[6] / labelled if labelled else None,
        "lr": m.optimizer.param_groups[0]["lr"], "seconds": seconds,
        "clips_per_second": 3 * steps * s.batch_size / max(seconds, 1e-9),
    }


def _state(m: Machinery, next_epoch: int, clusters: np.ndarray, best: dict[str, Any],
           finished: bool) -> dict[str, Any]:
    return {
        "model": m.encoder.state_dict(), "optimizer": m.optimizer.state_dict(),
        "scheduler": m.scheduler.state_dict(), "scaler": m.scaler.state_dict(),
        "epoch": next_epoch, "clusters": torch.from_numpy(clusters),
        "torch_rng": torch.get_rng_state(), "best": best, "finished": finished,
        "arch": m.settings.arch, "config": output_relevant(m.settings),
        "run_config": m.context.config, "slic_version": __version__,
    }


def _weights(m: Machinery, epoch: int, criterion: str, value: float | None) -> dict[str, Any]:
    return {"model": m.encoder.state_dict(), "epoch": epoch, "arch": m.settings.arch,
            "config": output_relevant(m.settings), "run_config": m.context.config,
            "criterion": criterion, "value": value, "slic_version": __version__}


def _prepare_folder(m: Machinery, resume: bool, force: bool) -> dict[str, Any] | None:
    """Load the checkpoint to resume from, or make sure a new run starts in a clean folder."""
    folder = m.folder
    if folder.checkpoint.is_file() and not resume and not force:
        raise ConfigError(f"run folder {folder.path} already holds a checkpoint; pass --resume "
                          "to continue it, --force to start over, or --run-name for a new run")
    if resume and folder.checkpoint.is_file():
        state = load_checkpoint(folder.checkpoint)
        _check_resumable(state["config"], m.settings, folder.checkpoint)
        return state
    if resume:
        m.context.progress.message(f"no checkpoint in {folder.path}; starting a new run")
    if m.distribution.is_main:
        for path in (folder.checkpoint, folder.best, folder.metrics, folder.assignments,
                     folder.features):
            path.unlink(missing_ok=True)
    return None


def run(settings: PretrainConfig, data: DataConfig, workspace: WorkspaceConfig,
        context: RunContext | None = None, frames: Path | None = None,
        flow: Path | None = None, resume: bool = False) -> PretrainResult:
    """Train (or resume) a SLIC run; returns where it is and its final metrics."""
    context = context or RunContext()
    clock = time.perf_counter()
    m = _build(settings, data, workspace, context, frames, flow)
    try:
        return _run(m, resume, clock)
    finally:
        dist_tools.stop_distribution(m.distribution)


def _run(m: Machinery, resume: bool, clock: float) -> PretrainResult:
    s, d, folder = m.settings, m.distribution, m.folder
    state = _prepare_folder(m, resume, m.context.force)
    dist_tools.barrier(d)
    log = MetricsLog(folder.metrics)
    start, best = 0, {"epoch": -1, "value": None}
    clusters = fixed_labels(s.pseudo_labels, m.videos.train_labels) \
        if s.pseudo_labels in ("none", "labels") else np.arange(len(m.videos.train))
    if state is not None:
        m.encoder.load_state_dict(state["model"])
        m.optimizer.load_state_dict(state["optimizer"])
        m.scheduler.load_state_dict(state["scheduler"])
        m.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        start, best, clusters = state["epoch"], state["best"], state["clusters"].numpy()
        _apply_learning_rate(m)
        if state["finished"] and start >= s.epochs:
            return PretrainResult(folder.path, "up to date", start,
                                  _final_metrics(log.records()),
                                  time.perf_counter() - clock)
        m.context.progress.message(f"resuming {folder.path} at epoch {start}")
    if d.is_main:
        write_config(folder, m.context.config)
        log.keep_before(start)
    iterative = s.pseudo_labels in ("finch", "kmeans")
    for epoch in range(start, s.epochs):
        record: dict[str, Any] = {"epoch": epoch}
        if iterative and epoch >= s.cluster_warmup_epochs and (
                epoch - s.cluster_warmup_epochs) % s.cluster_every == 0:
            found, clusters, _ = _clustering(m, epoch)
            if found is not None:
                record.update(found.metrics)
        m.triplets.set_clusters(clusters)
        record.update(_train_epoch(m, epoch))
        last = epoch == s.epochs - 1
        if last or (s.eval_every and (epoch + 1) % s.eval_every == 0):
            record.update(_evaluate(m))
            if s.best_by == "val" and record.get("val_r1") is not None and (
                    best["value"] is None or record["val_r1"] > best["value"]):
                best = {"epoch": epoch, "value": record["val_r1"]}
                if d.is_main:
                    save_checkpoint(_weights(m, epoch, "val_r1", best["value"]), folder.best)
        if d.is_main:
            save_checkpoint(_state(m, epoch + 1, clusters, best, False), folder.checkpoint)
            log.append(record)
            m.context.progress.row(record)
            draw_plots(log.records(), folder.path)
    final = _finish(m, clusters, best, log)
    return PretrainResult(folder.path, "trained", s.epochs, final, time.perf_counter() - clock)


def _apply_learning_rate(m: Machinery) -> None:
    """Use the configured lr after loading an optimiser state (a resume may lower it)."""
    m.scheduler.base_lrs = [m.settings.lr for _ in m.optimizer.param_groups]
    factor = m.scheduler.lr_lambdas[0](m.scheduler.last_epoch)
    for group in m.optimizer.param_groups:
        group["initial_lr"], group["lr"] = m.settings.lr, m.settings.lr * factor


def _finish(m: Machinery, clusters: np.ndarray, best: dict[str, Any], log: MetricsLog
            ) -> dict[str, Any]:
    """Final clustering of the trained embeddings, features.h5, best.pt and the last plots."""
    s, folder = m.settings, m.folder
    method = "kmeans" if s.pseudo_labels == "kmeans" else "finch"
    found, _, features = _clustering(m, s.epochs, method)
    if m.distribution.is_main:
        v = m.videos
        stored = StoredFeatures(features, v.train_ids, v.train_labels,
                                np.full(len(v.train), "train", dtype=object), v.class_names,
                                "projection", {"checkpoint": str(folder.checkpoint),
                                               "epoch": s.epochs, "clip": "centre",
                                               "clip_length": s.clip_length,
                                               "crop_size": s.crop_size})
        record_features(folder, stored, m.context, m.inputs)
        if s.best_by == "last":
            save_checkpoint(_weights(m, s.epochs - 1, "last", None), folder.best)
        save_checkpoint(_state(m, s.epochs, clusters, best, True), folder.checkpoint)
        assert found is not None
        log.append({"epoch": s.epochs, "final": True, **found.metrics})
        m.context.progress.row({"epoch": s.epochs, "final": True, **found.metrics})
        draw_plots(log.records(), folder.path)
    return _final_metrics(log.records())


def _final_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's figures: last loss, last recall, final clusters' quality."""
    final: dict[str, Any] = {}
    for record in records:
        for key in ("loss", "r1", "r5", "val_r1", "nmi", "ami", "num_clusters"):
            if record.get(key) is not None:
                value = record[key]
                final[key] = round(value, 4) if isinstance(value, float) else value
    return final
