"""A clustering round of pretraining: pseudo-labels from the current embeddings, and how good
they are against the true classes (for monitoring only)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages.clustering.metrics import cluster_quality
from stages.clustering.partitions import cluster_features
from stages.io.artifacts import Assignments


@dataclass
class ClusteringRound:
    """Pseudo-labels (N,) int64 for the training videos, and the round's record."""

    epoch: int
    labels: np.ndarray
    assignments: Assignments
    metrics: dict[str, Any] = field(default_factory=dict)


def labels_digest(labels: np.ndarray) -> str:
    """A short hash of (N,) labels, to check that every rank holds the same ones."""
    return hashlib.blake2b(np.asarray(labels, dtype=np.int64).tobytes(),
                           digest_size=8).hexdigest()


def fixed_labels(source: str, true_labels: np.ndarray) -> np.ndarray:
    """Pseudo-labels that never change: every video its own cluster (`none`, instance
    discrimination) or the true classes (`labels`, supervised SLIC). (N,) int64."""
    if source == "none":
        return np.arange(len(true_labels), dtype=np.int64)
    return np.asarray(true_labels, dtype=np.int64)


def clustering_round(epoch: int, features: np.ndarray, true_labels: np.ndarray,
                     video_ids: np.ndarray, method: str, partition: str,
                     num_clusters: int | None, nn: str, seed: int, shift: bool
                     ) -> ClusteringRound:
    """Cluster (N, D) features. `shift=True` reproduces the official code's off-by-one read of
    the labels file (video j gets video j - 1's label, video 0 the last one)."""
    clock = time.perf_counter()
    clustering = cluster_features(features, method, partition, num_clusters, nn, seed,
                                  section="pretrain")
    chosen = np.roll(clustering.chosen, 1) if shift else clustering.chosen
    cluster_seconds, clock = time.perf_counter() - clock, time.perf_counter()
    known = bool((true_labels >= 0).all())
    quality = ([cluster_quality(true_labels, p).as_dict()
                for p in [*clustering.partitions, chosen]] if known else [])
    assignments = Assignments(clustering.partitions, chosen, clustering.chosen_from, video_ids,
                              np.asarray(true_labels, dtype=np.int64), quality, method)
    metrics: dict[str, Any] = {"num_clusters": int(chosen.max()) + 1,
                               "cluster_seconds": cluster_seconds,
                               "quality_seconds": time.perf_counter() - clock}
    if quality:
        metrics.update(nmi=quality[-1]["nmi"], ami=quality[-1]["ami"],
                       cluster_fp_rate=quality[-1]["pair_false_positive_rate"])
    return ClusteringRound(epoch, chosen.astype(np.int64), assignments, metrics)
