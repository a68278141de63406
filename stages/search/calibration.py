"""Building an approximate index with its search depth set for a target recall, measured
against exact search with held-out rows of the collection as queries.

A sample of rows is left out while the index is built; each sampled row then queries the index
for its 10 nearest rows, the depth is raised until recall@10 against the exact neighbours among
the rows held reaches the target, and the sample is added last. A sampled row is thus a new
query to the index, as a user's video is: a row the index already holds is found through its
own graph links (HNSW) and overstates recall (measured: 0.975 against 0.951 on new queries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.search.approximate import FaissSearch
from stages.search.exact import ExactSearch

CALIBRATION_QUERIES = 1000  # held-out rows, at most a tenth of the collection
CALIBRATION_K = 10
# Aimed for on the sample, so that recall@10 on new queries stays >= 0.95: an estimate from 256
# rows varied by +-0.015 between samples, from 1,000 rows by about half that.
TARGET_RECALL = 0.97


@dataclass(frozen=True)
class Calibration:
    """The chosen depth (efSearch or nprobe), the recall@k it reached on `queries` held-out
    rows, and k (0 queries: too few rows to hold any out; the deepest depth is used)."""

    depth: int
    recall: float
    queries: int
    k: int


def overlap_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of `truth` (Q, k) found anywhere in the same row of `found`
    (Q, k'): recall@k of an approximate search against exact search. -1 entries never count."""
    hits = (found[:, :, None] == truth[:, None, :]) & (truth[:, None, :] >= 0)
    return float(hits.any(axis=1).sum() / truth.size) if truth.size else 1.0


def _exact_among_rest(unit: np.ndarray, held: np.ndarray, k: int) -> np.ndarray:
    """(H, k) int64: the exact k nearest rows of each held-out row among the rows not held out,
    from an exact search over all rows that reaches further until k of them are left."""
    is_held = np.zeros(len(unit), dtype=bool)
    is_held[held] = True
    exact, reach = ExactSearch(unit), 2 * k + 1
    while True:
        _, found = exact.search(unit[held], min(reach, len(unit)))
        kept = ~is_held[found]
        if reach >= len(unit) or (kept.sum(axis=1) >= k).all():
            break
        reach *= 4
    order = np.argsort(~kept, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)


def calibrated_search(unit: np.ndarray, method: str, seed: int
                      ) -> tuple[FaissSearch, Calibration]:
    """An approximate index of `method` over all (N, D) float32 unit rows, its depth the
    shallowest of its depths whose recall@10 on held-out rows reaches TARGET_RECALL (or its
    deepest, when none does), and that calibration. `seed` draws the held-out rows and IVF's
    k-means sample."""
    count = len(unit)
    search = FaissSearch.empty(unit, method, seed)
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(count, min(CALIBRATION_QUERIES, count // 10), replace=False))
    search.add(unit, np.setdiff1d(np.arange(count), held))
    if len(held) == 0:
        search.depth = search.depths[-1]
        search.add(unit, held)
        return search, Calibration(search.depth, 1.0, 0, 0)
    k = min(CALIBRATION_K, count - len(held))
    truth, queries = _exact_among_rest(unit, held, k), unit[held]
    recall = 0.0
    for depth in search.depths:
        search.depth = depth
        recall = overlap_recall(search.search(queries, k)[1], truth)
        if recall >= TARGET_RECALL:
            break
    search.add(unit, held)
    return search, Calibration(search.depth, recall, len(held), k)
