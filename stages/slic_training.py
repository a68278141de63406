"""SLIC's part of pretraining's epoch loop (`SlicTraining`): triplet batches, the SLIC loss,
clustering rounds before epochs, evaluation after them, and the pseudo-labels in the
checkpoint; with how the pretrain section samples items (`triplet_settings`) and mines them
(`mining_group`). `stages.pretrain` builds it and runs it on the training spine.
"""


import math
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from stages import __version__
from stages.clips.augment import AugmentSettings
from stages.clips.fixed_windows import EvaluationClips
from stages.clips.store import ClipStore
from stages.clips.triplets import EpochSampler, TripletClips, TripletSettings
from stages.evaluation.collapse import collapse_warning, embedding_health
from stages.evaluation.retrieval import retrieval_recall
from stages.io.checkpoint import save_checkpoint
from stages.io.run_folder import (
    RunFolder,
    record_round,
)
from stages.models.encoder import Encoder
from stages.pretrain_config import PretrainConfig, evaluation_interval
from stages.runtime.context import RunContext, now
from stages.runtime.errors import ConfigError
from stages.runtime.settings import output_relevant
from stages.training import distributed as dist_tools
from stages.training.compute import Compute, every_usable_core
from stages.training.embedding import embed_clips
from stages.training.loading import clip_loader, stop_workers, training_workers
from stages.training.monitor import draw_plots
from stages.training.rounds import (
    ClusteringRound,
    clustering_round,
    fixed_labels,
    labels_digest,
)
from stages.training.slic_step import LossSettings, pool_generators, slic_step
from stages.training.trainer import StepResult
from stages.training.video_split import TrainingVideos

PLOT_EVERY_SECONDS = 60.0


class SlicTraining:
    """SLIC's part of the training loop: triplet batches, the SLIC loss, clustering rounds
    before epochs, kNN evaluation after them, and the pseudo-labels in the checkpoint."""

    def __init__(self, settings: PretrainConfig, context: RunContext, compute: Compute,
                 videos: TrainingVideos, store: ClipStore, encoder: Encoder,
                 triplets: TripletClips, folder: RunFolder, inputs: list[dict[str, Any]]
                 ) -> None:
        self.settings, self.context, self.compute = settings, context, compute
        self.videos, self.store, self.encoder = videos, store, encoder
        self.triplets, self.folder, self.inputs = triplets, folder, inputs
        self.loss_settings = LossSettings(
            margin=settings.margin, temporal=settings.temporal_loss,
            temporal_margin=settings.temporal_margin, temporal_weight=settings.temporal_weight,
            official_fallback=settings.official_fallback_bug)
        self.clusters = (fixed_labels(settings.pseudo_labels, videos.train_labels)
                         if settings.pseudo_labels in ("none", "labels")
                         else np.arange(len(videos.train)))
        self.best: dict[str, Any] = {"epoch": -1, "value": None}
        self.finished = False
        self.collapse_warned = False
        # When the run started and finished (UTC, ISO 8601): its report's provenance.
        self.started_at: str | None = now()
        self.finished_at: str | None = None
        self.plotted_at = -math.inf  # time.monotonic() of the last drawing of the curves
        self.group = mining_group(settings, compute.distribution.world)
        self.sampler = EpochSampler(len(triplets), settings.seed, compute.distribution.rank,
                                    compute.distribution.world, self.group)
        self.loader: DataLoader | None = None
        self.true_labels: torch.Tensor | None = None

    # -- the TrainingTask protocol --------------------------------------------------------
    def batches(self, epoch: int) -> DataLoader:
        """This rank's triplet batches of `epoch` (batch_size // world items, partial batch
        dropped), with positives drawn from the current pseudo-labels. The loader and its
        workers live on from epoch to epoch; a clustering round that changed the pseudo-labels
        makes a new one (workers hold their own copy of them)."""
        s, d = self.settings, self.compute.distribution
        if self.loader is None or not np.array_equal(self.triplets.clusters, self.clusters):
            stop_workers(self.loader)  # before the new ones start
            self.triplets.set_clusters(self.clusters)
            self.loader = clip_loader(
                self.triplets, self.sampler, batch_size=s.batch_size // d.world,
                workers=training_workers(s.workers, self.compute.device),
                pin_memory=self.compute.device.type == "cuda", drop_last=True)
        self.sampler.set_epoch(epoch)
        return self.loader

    def step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], epoch: int,
             step: int) -> StepResult:
        """The SLIC loss of one triplet batch, with its triplet and temporal parts, mining counts
        and the false positives and negatives against true labels."""
        d = self.compute.distribution
        groups = len(batch["index"]) // self.group
        if self.true_labels is None:  # on the device once, not copied there every step
            self.true_labels = torch.from_numpy(self.videos.train_labels).to(
                self.compute.device)
        outcome = slic_step(model, batch, self.true_labels, self.loss_settings,
                            pool_generators(self.settings.seed, epoch, step, d.rank, d.world,
                                            groups), self.compute)
        return StepResult(outcome.loss, {
            "triplet_loss": outcome.triplet, "temporal_loss": outcome.temporal,
            "triplets": outcome.triplets, "fallbacks": outcome.fallbacks,
            "false_positives": outcome.false_positives,
            "false_negatives": outcome.false_negatives, "labelled": outcome.labelled,
            "alignment": outcome.alignment,
            # weighted by the step's triplets, so the epoch's figure is a mean over triplets
            "positive_distance_sum": outcome.positive_distance * outcome.triplets,
            "negative_distance_sum": outcome.negative_distance * outcome.triplets})

    def before_epoch(self, epoch: int) -> dict[str, Any]:
        """Run a clustering round when one is due (FINCH or k-means, after the warm-up, every
        `cluster_every` epochs); returns its metrics."""
        s = self.settings
        due = (s.pseudo_labels in ("finch", "kmeans") and epoch >= s.cluster_warmup_epochs
               and (epoch - s.cluster_warmup_epochs) % s.cluster_every == 0)
        if not due:
            return {}
        found, self.clusters, _ = self.clustering(epoch)
        return found.metrics if found is not None else {}

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
        """Evaluate kNN recall at every evaluation interval and the last epoch, and save best.pt
        when validation R@1 improves (best_by val); returns the figures."""
        s = self.settings
        every = evaluation_interval(s)
        if epoch != s.epochs - 1 and not (every and (epoch + 1) % every == 0):
            return {}
        figures = self.evaluate()
        value = figures.get("val_r1")
        if s.best_by == "val" and value is not None and (
                self.best["value"] is None or value > self.best["value"]):
            self.best = {"epoch": epoch, "value": value}
            if self.compute.distribution.is_main:
                save_checkpoint(self.weights(epoch, "val_r1", value), self.folder.best)
        return figures

    def summarise(self, totals: dict[str, float], steps: int, seconds: float
                  ) -> dict[str, Any]:
        """The epoch's record: mean losses and alignment per batch, triplets per step, fallback and
        false positive/negative rates (None without labels) and clips a second (3 an item)."""
        batches = max(steps * self.compute.distribution.world, 1)
        labelled = totals.get("labelled", 0.0)
        return {
            **{key: totals.get(key, 0.0) / batches
               for key in ("loss", "triplet_loss", "temporal_loss", "alignment")},
            "triplets_per_step": totals.get("triplets", 0.0) / batches,
            # d(a, p) and d(a, n) of the mined triplets: against pretrain.margin they show
            # whether the triplet loss can still fall (the loss alone cannot show progress)
            **{key: totals.get(f"{key}_sum", 0.0) / max(totals.get("triplets", 0.0), 1)
               for key in ("positive_distance", "negative_distance")},
            "fallback_rate": totals.get("fallbacks", 0.0) / max(totals.get("triplets", 0.0), 1),
            "positive_fp_rate": totals["false_positives"] / labelled if labelled else None,
            "negative_fn_rate": totals["false_negatives"] / labelled if labelled else None,
            "seconds": seconds,
            # Three clips an item; each of the world's ranks loads batch_size // world items.
            "clips_per_second": 3 * steps * self.compute.distribution.world
            * (self.settings.batch_size // self.compute.distribution.world) / max(seconds, 1e-9),
        }

    def extra_state(self) -> dict[str, Any]:
        """The pseudo-labels, best epoch, finished and collapse-warned flags, arch and run
        config, for checkpoint.pt; and the run's provenance: when it started and finished
        (`started_at`, `finished_at`: UTC ISO 8601, None where not known), the command that
        last ran it and the inputs it read."""
        return {"clusters": torch.from_numpy(np.asarray(self.clusters)), "best": self.best,
                "finished": self.finished, "collapse_warned": self.collapse_warned,
                "arch": self.settings.arch, "run_config": self.context.config,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "command": self.context.command, "inputs": self.inputs}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back the pseudo-labels, best epoch, the flags and the start and end times of a
        resumed checkpoint (None where an older slic recorded none)."""
        self.clusters, self.best = state["clusters"].numpy(), state["best"]
        self.finished = bool(state["finished"])
        self.collapse_warned = bool(state.get("collapse_warned", False))
        self.started_at, self.finished_at = state.get("started_at"), state.get("finished_at")

    def epoch_written(self, records: list[dict[str, Any]]) -> None:
        """Redraw the PNG curves at most every PLOT_EVERY_SECONDS (and always at the end of
        the run): six PNGs cost about as much as a whole epoch of a small CPU run."""
        if time.monotonic() - self.plotted_at >= PLOT_EVERY_SECONDS:
            draw_plots(records, self.folder.path)
            self.plotted_at = time.monotonic()

    def close(self) -> None:
        """Stop the loader's workers: the epochs are over (or stopped by an error)."""
        stop_workers(self.loader)
        self.loader = None

    # -- SLIC's own work --------------------------------------------------------------------
    def embed(self, videos: np.ndarray) -> np.ndarray:
        """(N, D) projections of the centre clips of `videos` (every rank holds all rows)."""
        s = self.settings
        clips = EvaluationClips(self.store, videos, s.clip_length, s.stride, s.crop_size)
        return embed_clips(self.encoder, clips, feature="projection",
                           batch_size=max(s.batch_size, 8), workers=s.workers,
                           compute=self.compute, progress=self.context.progress)

    def clustering(self, epoch: int, method: str | None = None
                   ) -> tuple[ClusteringRound | None, np.ndarray, np.ndarray]:
        """Embed the training videos and, on rank 0, cluster them; labels reach every rank.

        Returns rank 0's round (None elsewhere), the (N,) labels and the (N, D) features.
        """
        s, d = self.settings, self.compute.distribution
        clock = time.perf_counter()
        features = self.embed(self.videos.train)
        embed_seconds = time.perf_counter() - clock
        found = None
        if d.is_main:
            with every_usable_core():  # the other ranks wait: their cores are free
                found = clustering_round(epoch, features, self.videos.train_labels,
                                         self.videos.train_ids, method or s.pseudo_labels,
                                         s.partition, s.num_clusters, s.cluster_nn, s.seed,
                                         s.official_label_shift)
            record_round(self.folder, found.epoch, found.assignments, self.context, self.inputs)
            found.metrics.update(self.health(features))
            # Cluster sizes need no labels: one cluster swallowing the videos is a warning sign.
            found.metrics["largest_cluster_share"] = float(
                np.bincount(found.labels).max() / len(found.labels))
        clock = time.perf_counter()
        labels = dist_tools.broadcast_labels(None if found is None else found.labels,
                                             len(self.videos.train), d)
        agree = dist_tools.all_agree(labels_digest(labels), d)
        if found is not None:
            # Rank 0's broadcast alone: the other ranks also waited for its clustering.
            found.metrics.update(ranks_agree=agree, embed_seconds=embed_seconds,
                                 broadcast_seconds=time.perf_counter() - clock)
        return found, labels, features

    def health(self, features: np.ndarray) -> dict[str, float]:
        """Collapse measures of the (N, D) training embeddings, with a warning to the user
        when they say the embeddings collapsed (stages.evaluation.collapse)."""
        measures = embedding_health(features, self.settings.seed)
        warning = collapse_warning(measures, features.shape[1])
        if warning is not None and not self.collapse_warned:
            # Once a run: every later round and evaluation is in collapse.png.
            self.collapse_warned = True
            self.context.progress.message(
                f"warning: {warning} (shown once; every round's measures: "
                f"{self.folder.path / 'collapse.png'})")
        return measures

    def evaluate(self) -> dict[str, float]:
        """The collapse measures of the training embeddings and, where the videos have labels,
        test-to-train (and val-to-train) kNN recall on centre clips."""
        record: dict[str, float] = {}
        v = self.videos
        gallery = self.embed(v.train)
        if self.compute.distribution.is_main:
            record.update(self.health(gallery))
        if len(v.test) and has_labels(v):
            recall = retrieval_recall(self.embed(v.test), v.test_labels, gallery,
                                      v.train_labels, (1, 5))
            record.update(r1=recall[1], r5=recall[5])
        if len(v.val) and has_labels(v):
            recall = retrieval_recall(self.embed(v.val), v.val_labels, gallery,
                                      v.train_labels, (1,))
            record["val_r1"] = recall[1]
        return record

    def weights(self, epoch: int, criterion: str, value: float | None) -> dict[str, Any]:
        """best.pt's contents: the encoder's weights with the epoch, arch, settings, run config, and
        the criterion (`val_r1` or `last`) with its value."""
        s = self.settings
        return {"model": self.encoder.state_dict(), "epoch": epoch, "arch": s.arch,
                "config": output_relevant(s), "run_config": self.context.config,
                "criterion": criterion, "value": value, "slic_version": __version__}


def has_labels(videos: TrainingVideos) -> bool:
    """Whether every training video has a true label (none of an unlabelled collection has)."""
    return bool(len(videos.train)) and bool((videos.train_labels >= 0).all())


def mining_group(settings: PretrainConfig, world: int) -> int:
    """Items per mining group on `world` ranks: pretrain.mining_pool (at most the batch), or
    each rank's whole batch when it is 0. A rank's batch must hold whole groups."""
    per_rank = settings.batch_size // world
    if settings.mining_pool == 0:
        return per_rank
    group = min(settings.mining_pool, settings.batch_size)
    if per_rank % group:
        raise ConfigError(
            f"pretrain.mining_pool {group} does not divide the {per_rank} items each of the "
            f"{world} ranks gets (pretrain.batch_size {settings.batch_size}): set "
            f"pretrain.batch_size to a multiple of {group * world}, or mining_pool to a "
            f"divisor of {per_rank} (0: each rank's batch, which changes with the GPU count)")
    return group


def triplet_settings(settings: PretrainConfig, device: torch.device | None = None
                     ) -> TripletSettings:
    """How the pretrain section samples a training item on `device` (None: the CPU): its clip,
    positives and views; colour_on auto becomes device on CUDA, worker elsewhere."""
    colour_on = settings.colour_on
    if colour_on == "auto":
        colour_on = "device" if device is not None and device.type == "cuda" else "worker"
    return TripletSettings(
        clip_length=settings.clip_length, stride=settings.stride, anchor=settings.anchor,
        p_alpha=settings.p_alpha, p_beta=settings.p_beta, multiview=settings.multiview,
        flow_channel=settings.flow_channel, flow_contrast=settings.flow_contrast,
        flow_replaces=settings.flow_replaces,
        augment=AugmentSettings(crop_size=settings.crop_size,
                                min_crop_area=settings.min_crop_area, jitter=settings.jitter,
                                hue=settings.hue, flow_augment=settings.flow_augment,
                                colour_on=colour_on))
