"""Nearest-neighbour retrieval on cosine similarity and recall at k (the SLIC protocol)."""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np


def unit_rows(features: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float32 rows scaled to length 1 (zero rows stay zero)."""
    rows = np.ascontiguousarray(features, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, np.finfo(np.float32).tiny)


def nearest_neighbours(queries: np.ndarray, gallery: np.ndarray, k: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine search. (Q, D), (G, D) -> similarities (Q, k) float32, indices (Q, k) int64,
    best first; equal similarities among the k are ordered by gallery index (faiss's heap
    leaves their order to chance, which would make R@k depend on it)."""
    k = min(k, len(gallery))
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(unit_rows(gallery))
    similarities, indices = index.search(unit_rows(queries), k)
    order = np.lexsort((indices, -similarities), axis=1)
    return (np.take_along_axis(similarities, order, axis=1),
            np.take_along_axis(indices, order, axis=1))


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
