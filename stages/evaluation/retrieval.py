"""Nearest-neighbour retrieval on cosine similarity and recall at k (the SLIC protocol)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit_rows(features: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float32 rows scaled to length 1 (zero rows stay zero)."""
    rows = np.ascontiguousarray(features, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, np.finfo(np.float32).tiny)


QUERY_BLOCK = 1024  # queries scored at a time: a (1024, G) float32 block of similarities


def nearest_neighbours(queries: np.ndarray, gallery: np.ndarray, k: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine search. (Q, D), (G, D) -> similarities (Q, k) float32, indices (Q, k) int64,
    best first; equal similarities are ordered by gallery index, also where a tie straddles
    the k-th place, so R@k never depends on the order a search happened to visit them.

    Plain float32 matrix products, a block of queries at a time (memory O(block x G)): no
    faiss, so the evaluation runs on a GPU node's image that lacks it.
    """
    k = min(k, len(gallery))
    units, targets = unit_rows(queries), unit_rows(gallery)
    similarities = np.empty((len(units), k), dtype=np.float32)
    indices = np.empty((len(units), k), dtype=np.int64)
    for start in range(0, len(units), QUERY_BLOCK):
        block = units[start:start + QUERY_BLOCK] @ targets.T
        rows = slice(start, start + len(block))
        similarities[rows], indices[rows] = _best_k(block, k)
    return similarities, indices


def _best_k(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row of (B, G) similarities, best first, ties by column."""
    if k == 0:
        return np.zeros((len(block), 0), np.float32), np.zeros((len(block), 0), np.int64)
    if k < block.shape[1]:
        chosen = np.argpartition(-block, k - 1, axis=1)[:, :k]
    else:
        chosen = np.broadcast_to(np.arange(block.shape[1]), block.shape)
    values = np.take_along_axis(block, chosen, axis=1)
    order = np.lexsort((chosen, -values), axis=1)
    chosen, values = (np.take_along_axis(chosen, order, axis=1),
                      np.take_along_axis(values, order, axis=1))
    # A row whose k-th value is shared by more columns than were chosen: partition kept an
    # arbitrary subset of the tie, so that row is ranked in full.
    straddling = np.flatnonzero((block >= values[:, -1:]).sum(axis=1) > k)
    for row in straddling:
        full = np.lexsort((np.arange(block.shape[1]), -block[row]))[:k]
        chosen[row], values[row] = full, block[row, full]
    return values, chosen


def recall_at_k(query_labels: np.ndarray, neighbour_labels: np.ndarray,
                ks: Sequence[int]) -> dict[int, float]:
    """Share of queries with their own class among the first k neighbours, for each k.

    `query_labels` (Q,), `neighbour_labels` (Q, K) with K >= max(ks) (or the gallery size).
    """
    hits = neighbour_labels == np.asarray(query_labels)[:, None]
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), np.iinfo(np.int64).max)
    return {int(k): float((first_hit < k).mean()) for k in ks}


def retrieval_recall(queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
                     gallery_labels: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """R@k of test-to-train retrieval: queries (Q, D) searched in the gallery (G, D)."""
    _, indices = nearest_neighbours(queries, gallery, max(ks))
    return recall_at_k(query_labels, np.asarray(gallery_labels)[indices], ks)
