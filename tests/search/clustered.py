"""Synthetic features shaped like video embeddings: Gaussian clusters on the unit sphere."""

from __future__ import annotations

import numpy as np


def clustered_rows(count: int, dim: int = 32, clusters: int = 50, spread: float = 0.35,
                   seed: int = 0) -> np.ndarray:
    """(count, dim) float32 unit rows: a random centre on the sphere per cluster, plus
    isotropic Gaussian noise of norm about `spread`, normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = centres[rng.integers(clusters, size=count)]
    rows = rows + spread / np.sqrt(dim) * rng.standard_normal((count, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
