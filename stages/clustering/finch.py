"""FINCH (Sarfraz et al., CVPR 2019): partitions from first-neighbour relations.

Partition 0 links every point to its first neighbour (cosine) and takes the connected
components of that graph; each coarser partition repeats the step on the cluster means of
the raw features. Written from the paper's algorithm; memory is O(N * D), never O(N^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.clustering.neighbours import first_neighbours
from stages.runtime.errors import SlicError

SUM_CHUNK_ROWS = 8_192  # rows of one weighted bincount in cluster_sums


@dataclass
class FinchResult:
    """Every partition, finest first.

    `partitions[k]` is an (N,) int64 array of labels in 0..num_clusters[k]-1, numbered in the
    order of each cluster's smallest member index.
    """

    partitions: list[np.ndarray]
    num_clusters: list[int]
    requested: np.ndarray | None = None  # (N,) labels with exactly the requested count


def successor_components(successor: np.ndarray) -> np.ndarray:
    """Weakly connected components of the graph with edges i -> successor[i].

    Returns (N,) int64 labels numbered by each component's smallest member index. Vectorised
    hooking and pointer jumping: O(N log N) work, no Python loop over nodes.
    """
    parent = np.arange(len(successor))
    heads, tails = np.arange(len(successor)), np.asarray(successor)
    while True:
        left, right = parent[heads], parent[tails]
        differ = left != right
        if not differ.any():
            break
        low = np.minimum(left[differ], right[differ])
        high = np.maximum(left[differ], right[differ])
        np.minimum.at(parent, high, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    _, labels = np.unique(parent, return_inverse=True)
    return labels.astype(np.int64)


def cluster_sums(rows: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """(count, D) float64 sums of the (N, D) rows of each label (labels 0..count-1).

    One weighted bincount over (label, column) cells per chunk of rows: 2x faster than
    sorting the rows and `np.add.reduceat` along axis 0, which is slow in numpy. Chunks keep
    the (rows, D) cell index small and hold at least `count` rows, so adding a chunk's sums
    costs no more than summing its rows.
    """
    rows, labels = np.asarray(rows), np.asarray(labels, dtype=np.int64)
    dim = rows.shape[1]
    sums = np.zeros(count * dim)
    columns = np.arange(dim)
    step = max(SUM_CHUNK_ROWS, count)
    for start in range(0, len(rows), step):
        cells = (labels[start:start + step, None] * dim + columns).ravel()
        sums += np.bincount(cells, weights=rows[start:start + step].ravel(),
                            minlength=count * dim)
    return sums.reshape(count, dim)


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..K-1 in the order of each label's first (smallest-index) member."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


def merge_to_count(features: np.ndarray, labels: np.ndarray, target: int) -> np.ndarray:
    """Merge the two closest clusters (cosine between raw-feature means), one pair at a time,
    until `target` clusters are left; returns canonical (N,) labels.

    This is how FINCH reaches a requested cluster count from the smallest partition that has
    at least that many clusters.
    """
    labels = canonical_labels(labels)
    count = int(labels.max()) + 1
    sums = cluster_sums(features, labels, count)
    sizes = np.bincount(labels, minlength=count).astype(np.float64)
    while count > target:
        successor, distance = first_neighbours((sums / sizes[:, None]).astype(np.float32))
        keep = int(np.argmin(distance))
        drop = int(successor[keep])
        keep, drop = min(keep, drop), max(keep, drop)
        sums[keep] += sums[drop]
        sizes[keep] += sizes[drop]
        sums, sizes = np.delete(sums, drop, axis=0), np.delete(sizes, drop)
        labels = np.where(labels == drop, keep, labels)
        labels = np.where(labels > drop, labels - 1, labels)
        count -= 1
    return canonical_labels(labels)


def finch(features: np.ndarray, ensure_early_exit: bool = False,
          num_clusters: int | None = None, neighbours: str = "exact") -> FinchResult:
    """All FINCH partitions of (N, D) features, N >= 2; with `num_clusters`, also labels with
    exactly that many clusters (`merge_to_count` from the coarsest partition that has at least
    as many). `neighbours` picks the first-neighbour search (NEIGHBOUR_SEARCHES).

    A coarser partition is kept while it merges at least two clusters and leaves more than
    one. With `ensure_early_exit`, links at coarser levels longer than the longest
    first-neighbour link of partition 0 are dropped. The authors' package computes that
    pruning, but it never takes effect there (it zeroes entries of a sparse matrix, and scipy
    still counts stored zeros as edges), so it is off by default: the default partitions are
    those of the authors' package.
    """
    features = np.asarray(features, dtype=np.float32)
    successor, distance = first_neighbours(features, neighbours)
    labels = successor_components(successor)
    partitions, counts = [labels], [int(labels.max()) + 1]
    longest_link = float(distance[np.isfinite(distance)].max())
    # Means of the raw features per cluster, kept as sums and sizes so that each coarser level
    # sums the previous level's clusters instead of all N rows again.
    sums = cluster_sums(features, labels, counts[0])
    sizes = np.bincount(labels, minlength=counts[0]).astype(np.float64)
    while counts[-1] > 1:
        means = (sums / sizes[:, None]).astype(np.float32)
        successor, distance = first_neighbours(means, neighbours)
        if ensure_early_exit:
            successor = np.where(distance > longest_link, np.arange(len(means)), successor)
        groups = successor_components(successor)
        count = int(groups.max()) + 1
        if count == 1 or counts[-1] - count <= 1:
            break
        partitions.append(groups[partitions[-1]])
        counts.append(count)
        sums = cluster_sums(sums, groups, count)
        sizes = np.bincount(groups, weights=sizes, minlength=count)
    result = FinchResult(partitions, counts)
    if num_clusters is not None:
        if not 1 <= num_clusters <= counts[0]:
            raise SlicError(f"--num-clusters {num_clusters} must be between 1 and {counts[0]}, "
                            "the cluster count of the finest FINCH partition of this data")
        level = max(i for i, c in enumerate(counts) if c >= num_clusters)
        result.requested = merge_to_count(features, partitions[level], num_clusters)
    return result
