"""The `cluster` config section: how FINCH (or k-means) partitions video features."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import CLUSTER_METHODS, NEIGHBOUR_SEARCHES
from stages.runtime.settings import setting


@dataclass
class ClusterConfig:
    """cluster: FINCH on video features; the chosen partition becomes the pseudo-labels"""

    method: str = setting("finch", "finch (all partitions) or kmeans (needs num_clusters)",
                          choices=CLUSTER_METHODS)
    split: str = setting("all", "which videos to cluster, by the features' split array",
                         choices=("train", "test", "all"))
    partition: str = setting("finest", "partition used as pseudo-labels: finest, coarsest or "
                             "a level index (0 = finest)")
    num_clusters: int | None = setting(None, "pseudo-labels with exactly this many clusters "
                                       "(overrides partition); null = use partition",
                                       minimum=1)
    nn: str = setting("auto", "first-neighbour search: exact, hnsw or ivf (approximate); auto "
                      "= exact up to 50,000 points, hnsw above", choices=NEIGHBOUR_SEARCHES)
    seed: int = setting(0, "seed of k-means", minimum=0)
    ensure_early_exit: bool = setting(False, "drop coarse links longer than partition 0's "
                                      "longest (no effect in the authors' package)")
