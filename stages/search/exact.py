"""Exact search: every query scored against every row, with the project's NumPy search."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from stages.evaluation.retrieval import nearest_neighbours

# Similarities scored per call of nearest_neighbours: (queries x N) float32 of at most 64 MB,
# so a search holds a few hundred MB at the most (its partition and sort copies included).
BLOCK_BYTES = 64 * 2**20


class ExactSearch:
    """Exact cosine search over (N, D) float32 unit rows; nothing to build but the rows."""

    def __init__(self, unit: np.ndarray) -> None:
        self.unit = unit

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) unit queries -> similarities (Q, k) float32 and indices (Q, k) int64, best
        first, equal similarities by smaller index; k <= N."""
        chunk = max(1, BLOCK_BYTES // (4 * len(self.unit)))
        found = [nearest_neighbours(queries[start:start + chunk], self.unit, k)
                 for start in range(0, len(queries), chunk)]
        if not found:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return (np.concatenate([similarities for similarities, _ in found]),
                np.concatenate([indices for _, indices in found]))

    def write(self, handle: BinaryIO) -> None:
        """Write the unit rows to an open binary file as one .npy array."""
        np.save(handle, self.unit, allow_pickle=False)

    @classmethod
    def read(cls, handle: BinaryIO) -> ExactSearch:
        """Read what `write` wrote (ValueError or OSError where it is damaged)."""
        unit = np.load(handle, allow_pickle=False)
        if unit.dtype != np.float32 or unit.ndim != 2:
            raise ValueError(f"stored rows are {unit.dtype} of shape {unit.shape}, not (N, D) "
                             "float32")
        return cls(unit)
