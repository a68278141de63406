"""Exact search: every query scored against every row, with the project's NumPy search."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from stages.evaluation.retrieval import nearest_neighbours

# Rows scored per call of nearest_neighbours, which scores 1,024 queries at a time: a block of
# similarities of 64 MB at most. The calls go through the rows, not the queries, because each
# call normalises the rows it is given again: this way every row once per search.
GALLERY_ROWS = 16_384


class ExactSearch:
    """Exact cosine search over (N, D) float32 unit rows; nothing to build but the rows."""

    def __init__(self, unit: np.ndarray) -> None:
        self.unit = unit

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) unit queries -> similarities (Q, k) float32 and indices (Q, k) int64, best
        first, equal similarities by smaller index; k <= N. Each block of rows gives its own
        best k, merged with the best so far by (similarity, index): the same order as one
        search over all rows."""
        similarities = np.zeros((len(queries), 0), np.float32)
        indices = np.zeros((len(queries), 0), np.int64)
        for start in range(0, len(self.unit), GALLERY_ROWS):
            found, rows = nearest_neighbours(queries, self.unit[start:start + GALLERY_ROWS], k)
            similarities = np.concatenate([similarities, found], axis=1)
            indices = np.concatenate([indices, rows + start], axis=1)
            order = np.lexsort((indices, -similarities), axis=1)[:, :k]
            similarities = np.take_along_axis(similarities, order, axis=1)
            indices = np.take_along_axis(indices, order, axis=1)
        return similarities, indices

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
