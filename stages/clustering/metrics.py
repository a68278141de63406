"""Agreement between a clustering and ground-truth labels: NMI, AMI, ARI, purity, pair errors.

NMI and AMI use the arithmetic mean of the two entropies (scikit-learn's default), so the
values equal scikit-learn's; AMI's expected mutual information is computed exactly from
log-factorials, vectorised over the distinct class and cluster sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Terms of the expected mutual information evaluated at once (about 8 arrays of this many
# float64 or int64 values): bounds memory whatever the number of classes and clusters.
EMI_CHUNK = 1 << 20
# Terms of the expected mutual information further than the Bernstein bound's reach for a
# tail probability of exp(-EMI_TAIL) from the mean are left out (see below).
EMI_TAIL = 50.0
# log k! is exact (math.lgamma) at every multiple of this, a running sum of logs in between:
# a plain running sum from 1 drifts by 1e-9 at 20,000 and 4e-7 at 1,000,000.
_LOG_FACTORIAL_BLOCK = 64


@dataclass
class ClusterQuality:
    """How well cluster ids match true labels. `pair_false_positive_rate` is the share of
    pairs of videos in one cluster whose true labels differ (the false positives of
    cluster-based positive sampling)."""

    nmi: float
    ami: float
    ari: float
    purity: float
    pair_false_positive_rate: float

    def as_dict(self) -> dict[str, float]:
        """The five scores as a plain dict of floats, as stored in assignments.h5's quality JSON."""
        return asdict(self)


@dataclass
class Contingency:
    """The non-empty cells of the (C, K) table of true class c against cluster k, ordered by
    cluster then class: `classes`, `clusters` and `counts` (M,) int64; and its marginals,
    `rows` (C,) videos per class and `cols` (K,) videos per cluster."""

    classes: np.ndarray
    clusters: np.ndarray
    counts: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def contingency(truth: np.ndarray, clusters: np.ndarray) -> Contingency:
    """Contingency of true labels (N,) against cluster ids (N,), without the dense C x K
    table (200 classes x 20,000 singleton clusters would be 32 MB of mostly zeros)."""
    _, true_index = np.unique(truth, return_inverse=True)
    _, cluster_index = np.unique(clusters, return_inverse=True)
    num_classes = int(true_index.max()) + 1
    codes, counts = np.unique(cluster_index.astype(np.int64) * num_classes + true_index,
                              return_counts=True)
    return Contingency(codes % num_classes, codes // num_classes, counts.astype(np.int64),
                       np.bincount(true_index), np.bincount(cluster_index))


def log_factorials(n: int) -> np.ndarray:
    """(n + 1,) float64: log k! for k = 0..n, within a few ulps of math.lgamma(k + 1)."""
    blocks = n // _LOG_FACTORIAL_BLOCK + 1
    logs = np.log(np.arange(1, blocks * _LOG_FACTORIAL_BLOCK + 1, dtype=np.float64))
    anchors = np.array([math.lgamma(b * _LOG_FACTORIAL_BLOCK + 1) for b in range(blocks)])
    table = anchors[:, None] + np.cumsum(logs.reshape(blocks, _LOG_FACTORIAL_BLOCK), axis=1)
    return np.concatenate([[0.0], table.ravel()[:n]])


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mutual_information(table: Contingency, n: int) -> float:
    outer = table.rows[table.classes].astype(np.float64) * table.cols[table.clusters]
    return float((table.counts / n * np.log(table.counts * float(n) / outer)).sum())


def _expected_mutual_information(rows: np.ndarray, cols: np.ndarray, n: int) -> float:
    """E[MI] of two random labellings with these marginals (hypergeometric model).

    Sum over classes i, clusters j and n_ij from max(1, a_i + b_j - n) to min(a_i, b_j) of
    n_ij / n * log(n n_ij / (a_i b_j)) * P(n_ij | a_i, b_j, n). The terms depend on (a_i, b_j)
    only, so each pair of distinct sizes is summed once and weighted by how often it occurs
    (at most sqrt(2n) distinct sizes each side); the (pair, n_ij) terms are laid out flat and
    evaluated EMI_CHUNK at a time.

    n_ij is hypergeometric with mean a b / n; its tails are bounded by the binomial's
    (Hoeffding 1963), so Bernstein's inequality gives P(|n_ij - mean| >= t) <=
    2 exp(-t^2 / (2 (mean + t / 3))). Only n_ij within the t where that is 2 exp(-EMI_TAIL)
    are summed: each term is at most (min(a, b) / n) log n in size and these sum to at most
    C over all pairs, so what is left out is below 2 C log(n) exp(-50), about 5e-21 C at a
    million videos. That drops 20-50% of the terms at 20,000 videos, 90% at a million.
    """
    size_a, times_a = np.unique(rows, return_counts=True)
    size_b, times_b = np.unique(cols, return_counts=True)
    a = np.repeat(size_a, len(size_b)).astype(np.int64)
    b = np.tile(size_b, len(size_a)).astype(np.int64)
    weight = np.outer(times_a, times_b).ravel().astype(np.float64)
    mean = a * b / n
    reach = EMI_TAIL / 3 + np.sqrt(EMI_TAIL**2 / 9 + 2 * EMI_TAIL * mean)
    first = np.maximum(np.maximum(1, a + b - n), np.ceil(mean - reach).astype(np.int64))
    length = np.minimum(np.minimum(a, b), np.floor(mean + reach).astype(np.int64)) - first + 1
    log_f = log_factorials(n)
    pair_log_p = log_f[a] + log_f[b] + log_f[n - a] + log_f[n - b] - log_f[n]
    log_n_over_ab = math.log(n) - np.log(a) - np.log(b)
    ends = np.cumsum(length)
    # Chunk boundaries fall between pairs; a pair longer than EMI_CHUNK (at most n terms)
    # makes a chunk of its own.
    cuts = np.unique(np.searchsorted(ends, np.arange(EMI_CHUNK, ends[-1], EMI_CHUNK),
                                     side="right"))
    total = 0.0
    for start, stop in zip([0, *cuts], [*cuts, len(a)]):
        if stop <= start:
            continue
        pair = np.repeat(np.arange(start, stop), length[start:stop])
        offset = np.arange(len(pair)) - np.repeat(ends[start:stop] - length[start:stop]
                                                  - (ends[start - 1] if start else 0),
                                                  length[start:stop])
        nij = first[pair] + offset
        pa, pb = a[pair], b[pair]
        log_p = (pair_log_p[pair] - log_f[nij] - log_f[pa - nij] - log_f[pb - nij]
                 - log_f[n - pa - pb + nij])
        terms = nij * (np.log(nij) + log_n_over_ab[pair]) * np.exp(log_p)
        total += float(weight[start:stop] @ np.bincount(pair - start, terms, stop - start))
    return total / n


def _comb2(values: np.ndarray) -> float:
    return float((values * (values - 1) // 2).sum())


def cluster_quality(truth: np.ndarray, clusters: np.ndarray) -> ClusterQuality:
    """Compare cluster ids (N,) with true labels (N,)."""
    table = contingency(np.asarray(truth), np.asarray(clusters))
    rows, cols = table.rows, table.cols
    n = int(rows.sum())
    h_true, h_cluster = _entropy(rows), _entropy(cols)
    mi = _mutual_information(table, n)
    mean_entropy = (h_true + h_cluster) / 2
    nmi = mi / mean_entropy if mean_entropy > 0 else 1.0
    if len(rows) == len(cols) == 1 or len(rows) == len(cols) == n:
        ami = 1.0
    elif len(rows) == 1 or len(cols) == 1:
        ami = 0.0
    else:
        emi = _expected_mutual_information(rows, cols, n)
        denominator = mean_entropy - emi
        ami = (mi - emi) / denominator if denominator != 0 else 0.0
    pairs, same_true, same_cluster = _comb2(table.counts), _comb2(rows), _comb2(cols)
    expected = same_true * same_cluster / (n * (n - 1) / 2)
    maximum = (same_true + same_cluster) / 2
    ari = 1.0 if maximum == expected else (pairs - expected) / (maximum - expected)
    cluster_starts = np.flatnonzero(np.diff(table.clusters, prepend=-1))
    return ClusterQuality(
        nmi=float(nmi), ami=float(ami), ari=float(ari),
        purity=float(np.maximum.reduceat(table.counts, cluster_starts).sum() / n),
        pair_false_positive_rate=(same_cluster - pairs) / same_cluster if same_cluster else 0.0,
    )
