"""Spherical k-means with faiss: the alternative to FINCH that SLIC's ablations compare."""

from __future__ import annotations

import numpy as np

from stages.clustering.finch import canonical_labels
from stages.runtime.errors import SlicError


def spherical_kmeans(features: np.ndarray, num_clusters: int, seed: int = 0,
                     iterations: int = 25) -> np.ndarray:
    """(N,) int64 canonical labels of k-means on L2-normalised (N, D) features (cosine)."""
    if not 1 <= num_clusters <= len(features):
        raise SlicError(f"--num-clusters {num_clusters} must be between 1 and the number of "
                        f"videos ({len(features)})")
    import faiss  # loads only when k-means runs: FINCH, the default, never needs it

    matrix = np.array(features, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(matrix)
    kmeans = faiss.Kmeans(matrix.shape[1], num_clusters, niter=iterations, seed=seed,
                          spherical=True, verbose=False,
                          max_points_per_centroid=max(256, len(matrix) // num_clusters + 1))
    kmeans.train(matrix)
    _, assigned = kmeans.index.search(matrix, 1)
    return canonical_labels(assigned[:, 0].astype(np.int64))
