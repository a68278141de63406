"""Agreement between a clustering and ground-truth labels: NMI, AMI, ARI, purity, pair errors.

NMI and AMI use the arithmetic mean of the two entropies (scikit-learn's default), so the
values equal scikit-learn's; AMI's expected mutual information is computed exactly from
log-factorials.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
        return asdict(self)


def contingency(truth: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """(C, K) int64 counts of videos with true class c in cluster k (empty rows/cols dropped)."""
    _, true_index = np.unique(truth, return_inverse=True)
    _, cluster_index = np.unique(clusters, return_inverse=True)
    table = np.zeros((true_index.max() + 1, cluster_index.max() + 1), dtype=np.int64)
    np.add.at(table, (true_index, cluster_index), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mutual_information(table: np.ndarray) -> float:
    n = table.sum()
    rows, cols = table.sum(1, keepdims=True), table.sum(0, keepdims=True)
    nonzero = table > 0
    joint = table[nonzero] / n
    return float((joint * np.log(table[nonzero] * n / (rows @ cols)[nonzero])).sum())


def _expected_mutual_information(rows: np.ndarray, cols: np.ndarray, n: int) -> float:
    """E[MI] of two random labellings with these marginals (hypergeometric model)."""
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    total = 0.0
    for a in rows:
        for b in cols:
            nij = np.arange(max(1, a + b - n), min(a, b) + 1)
            if len(nij) == 0:
                continue
            log_p = (log_factorial[a] + log_factorial[b] + log_factorial[n - a]
                     + log_factorial[n - b] - log_factorial[n] - log_factorial[nij]
                     - log_factorial[a - nij] - log_factorial[b - nij]
                     - log_factorial[n - a - b + nij])
            total += float((nij / n * np.log(n * nij / (a * b)) * np.exp(log_p)).sum())
    return total


def _comb2(values: np.ndarray) -> float:
    return float((values * (values - 1) // 2).sum())


def cluster_quality(truth: np.ndarray, clusters: np.ndarray) -> ClusterQuality:
    """Compare cluster ids (N,) with true labels (N,)."""
    table = contingency(np.asarray(truth), np.asarray(clusters))
    n = int(table.sum())
    rows, cols = table.sum(1), table.sum(0)
    h_true, h_cluster = _entropy(rows), _entropy(cols)
    mi = _mutual_information(table)
    mean_entropy = (h_true + h_cluster) / 2
    nmi = mi / mean_entropy if mean_entropy > 0 else 1.0
    if len(rows) == len(cols) == 1 or len(rows) == len(cols) == n:
        ami = 1.0
    else:
        emi = _expected_mutual_information(rows, cols, n)
        denominator = mean_entropy - emi
        ami = (mi - emi) / denominator if denominator != 0 else 0.0
    pairs, same_true, same_cluster = _comb2(table), _comb2(rows), _comb2(cols)
    expected = same_true * same_cluster / (n * (n - 1) / 2)
    maximum = (same_true + same_cluster) / 2
    ari = 1.0 if maximum == expected else (pairs - expected) / (maximum - expected)
    return ClusterQuality(
        nmi=float(nmi), ami=float(ami), ari=float(ari),
        purity=float(table.max(0).sum() / n),
        pair_false_positive_rate=(same_cluster - pairs) / same_cluster if same_cluster else 0.0,
    )
