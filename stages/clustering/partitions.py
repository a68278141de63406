"""From features to pseudo-labels: FINCH (every partition) or k-means, and the chosen labels.

Shared by `slic cluster` and pretraining's clustering rounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from stages.clustering.finch import finch
from stages.clustering.kmeans import spherical_kmeans
from stages.runtime.errors import ConfigError


@dataclass
class Clustering:
    """`partitions` (P, N) int64, finest first; `chosen` (N,) the pseudo-labels to use."""

    partitions: np.ndarray
    num_clusters: list[int]
    chosen: np.ndarray
    chosen_from: str


def choose_partition(choice: str, count: int, key: str = "cluster.partition") -> int:
    """Index of the partition named by `finest`, `coarsest` or an index in 0..count-1."""
    if choice == "finest":
        return 0
    if choice == "coarsest":
        return count - 1
    if re.fullmatch(r"[0-9]+", choice) and int(choice) < count:
        return int(choice)
    raise ConfigError(f"{key} {choice!r} must be finest, coarsest or an index in "
                      f"0..{count - 1} (this clustering has {count} partitions)")


def cluster_features(features: np.ndarray, method: str, partition: str = "finest",
                     num_clusters: int | None = None, nn: str = "auto", seed: int = 0,
                     ensure_early_exit: bool = False, section: str = "cluster") -> Clustering:
    """Cluster (N, D) features with `finch` or `kmeans` (which needs `num_clusters`).

    `section` names the config section in error messages.
    """
    if method == "kmeans":
        if num_clusters is None:
            raise ConfigError(f"k-means needs --num-clusters K ({section}.num_clusters)")
        labels = spherical_kmeans(features, num_clusters, seed)
        return Clustering(labels[None], [int(labels.max()) + 1], labels, "partition 0")
    result = finch(features, ensure_early_exit, num_clusters, nn)
    partitions = np.stack(result.partitions)
    if result.requested is not None:
        return Clustering(partitions, result.num_clusters, result.requested,
                          f"num_clusters {num_clusters}")
    level = choose_partition(partition, len(partitions), f"{section}.partition")
    return Clustering(partitions, result.num_clusters, partitions[level], f"partition {level}")
