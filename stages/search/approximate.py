"""Approximate search with faiss: HNSW (a graph) or IVF-Flat (inverted lists), inner product
over unit rows. faiss loads only here, when an approximate index is built, searched or read.

Rows are added under their own row numbers as ids (IVF stores ids in its lists; the HNSW graph
is wrapped in an IndexIDMap), so rows can be added in any order: calibration adds a sample of
rows last, after it has measured recall with them as queries that the index does not hold.
Each index has one search knob, its depth: efSearch for HNSW (candidates kept while walking the
graph), nprobe for IVF (lists scanned).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from stages.runtime.cores import usable_cores

if TYPE_CHECKING:
    import faiss

HNSW_LINKS = 32  # M: graph neighbours of a row (64 on the bottom layer)
HNSW_BUILD_DEPTH = 40  # efConstruction
HNSW_DEPTHS = (16, 32, 64, 128, 256, 512, 1024)  # efSearch values calibration tries
IVF_LISTS_PER_ROOT = 1.0  # nlist = sqrt(N): the build's k-means and assignment cost ~ nlist
IVF_TRAINING_PER_LIST = 64  # k-means sample: 64 rows a list (faiss warns below 39)
IVF_KMEANS_ITERATIONS = 10  # lists need not converge: recall is set by nprobe
ADD_CHUNK = 65_536  # rows copied and added at a time (16 MB at D = 64)
APPROXIMATE_METHODS = ("hnsw", "ivf")


@contextmanager
def faiss_threads(count: int | None = None) -> Iterator[None]:
    """faiss's OpenMP threads set to `count` (default: the usable cores) inside the block, and
    back to what they were after it."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count or usable_cores())
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def ivf_lists(count: int) -> int:
    """nlist for `count` rows: IVF_LISTS_PER_ROOT x sqrt(N), at most N / 39 (faiss's floor of
    training rows a list), at least 1."""
    return int(max(1, min(round(IVF_LISTS_PER_ROOT * math.sqrt(count)), count // 39)))


def _empty_hnsw(dim: int) -> faiss.Index:
    import faiss

    graph = faiss.IndexHNSWFlat(dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = HNSW_BUILD_DEPTH
    return faiss.IndexIDMap(graph)


def _trained_ivf(unit: np.ndarray, seed: int) -> faiss.Index:
    import faiss

    count, dim = unit.shape
    lists = ivf_lists(count)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.niter = seed, IVF_KMEANS_ITERATIONS
    sample = lists * IVF_TRAINING_PER_LIST
    rows = (np.sort(np.random.default_rng(seed).choice(count, sample, replace=False))
            if sample < count else slice(None))
    with faiss_threads():
        index.train(unit[rows])
    return index


class FaissSearch:
    """An approximate faiss index (HNSW or IVF-Flat, inner product, rows under their row
    numbers as ids) and its search depth."""

    def __init__(self, index: faiss.Index, method: str) -> None:
        import faiss

        self.index, self.method = index, method
        # The object that holds the depth: the graph inside the id map, or the IVF index.
        self._knob = faiss.downcast_index(index.index) if method == "hnsw" else index

    @classmethod
    def empty(cls, unit: np.ndarray, method: str, seed: int) -> FaissSearch:
        """An index of `method` ("hnsw" or "ivf") for the (N, D) float32 unit rows, holding none
        of them yet; IVF's lists are trained (k-means on a sample of N drawn with `seed`)."""
        built = _empty_hnsw(unit.shape[1]) if method == "hnsw" else _trained_ivf(unit, seed)
        return cls(built, method)

    def add(self, unit: np.ndarray, rows: np.ndarray) -> None:
        """Add the rows of `unit` numbered by `rows` ((R,) int64, increasing), on the usable
        cores, ADD_CHUNK at a time. IVF gives the same index for the same rows added in the same
        order; HNSW's graph depends on the order threads insert them, so it may differ slightly
        from build to build."""
        with faiss_threads():
            for start in range(0, len(rows), ADD_CHUNK):
                chosen = rows[start:start + ADD_CHUNK]
                self.index.add_with_ids(unit[chosen], chosen)

    @property
    def depths(self) -> tuple[int, ...]:
        """The search depths calibration tries, shallow to deep; IVF's last scans every list
        (exact up to ties)."""
        if self.method == "hnsw":
            return HNSW_DEPTHS
        lists = self.index.nlist
        return tuple(sorted({min(2**step, lists) for step in range(lists.bit_length() + 1)}))

    @property
    def depth(self) -> int:
        """efSearch (HNSW) or nprobe (IVF)."""
        return int(self._knob.hnsw.efSearch if self.method == "hnsw" else self._knob.nprobe)

    @depth.setter
    def depth(self, value: int) -> None:
        """Set efSearch (HNSW) or nprobe (IVF)."""
        if self.method == "hnsw":
            self._knob.hnsw.efSearch = int(value)
        else:
            self._knob.nprobe = int(value)

    @property
    def size(self) -> tuple[int, int]:
        """(rows held, values a row)."""
        return int(self.index.ntotal), int(self.index.d)

    def parameters(self) -> dict[str, int]:
        """The settings that describe the index: M, efConstruction, efSearch, or nlist,
        nprobe."""
        if self.method == "hnsw":
            return {"M": HNSW_LINKS, "efConstruction": int(self._knob.hnsw.efConstruction),
                    "efSearch": self.depth}
        return {"nlist": int(self.index.nlist), "nprobe": self.depth}

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) unit queries -> similarities (Q, k) float32 and row numbers (Q, k) int64,
        best first; -1 (similarity -inf) where the search reached fewer than k rows."""
        with faiss_threads():
            similarities, indices = self.index.search(queries, k)
        similarities[indices < 0] = -np.inf
        return similarities, indices.astype(np.int64, copy=False)

    def write(self, handle: BinaryIO) -> None:
        """Stream the faiss index into an open binary file."""
        import faiss

        faiss.write_index(self.index, faiss.PyCallbackIOWriter(handle.write))

    @classmethod
    def read(cls, handle: BinaryIO, method: str) -> FaissSearch:
        """Read what `write` wrote; RuntimeError (faiss) or ValueError where it is damaged or
        is not the `method` it should be."""
        import faiss

        index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
        if method == "hnsw":
            held = (faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap)
                    else None)
            found, usable = f"{type(index).__name__} of {type(held).__name__}", isinstance(
                held, faiss.IndexHNSWFlat)
            wanted = "IndexIDMap of IndexHNSWFlat"
        else:
            found, usable = type(index).__name__, isinstance(index, faiss.IndexIVFFlat)
            wanted = "IndexIVFFlat"
        if not usable or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"stored index is a {found}, not an inner-product {wanted}")
        return cls(index, method)
