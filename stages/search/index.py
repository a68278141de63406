"""A search index over a collection of video features: cosine similarity as the inner product
of L2-normalised rows, exact or approximate, saved to and loaded from one file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from stages.evaluation.retrieval import unit_rows
from stages.runtime.errors import ArtifactError, ConfigError, SlicError
from stages.search.approximate import APPROXIMATE_METHODS, FaissSearch
from stages.search.calibration import calibrated_search
from stages.search.exact import ExactSearch
from stages.search.fingerprint import features_fingerprint
from stages.search.index_file import read_index_file, write_index_file
from stages.search.rows import checked_k, checked_rows

SEARCH_METHODS = ("auto", "exact", "hnsw", "ivf")
# auto: exact search up to this many rows, IVF above (benchmarks/RESULTS.md, section 19). A
# single exact query costs O(N x D), two thirds of it nearest_neighbours normalising the whole
# collection again: 24 / 28 ms (median / p95) at 25,000 x 128 on 2 loaded cores, 41 / 52 ms at
# 50,000, against a 50 ms target. IVF builds 25,000 rows in about 1.5 s; its queries take < 1 ms.
AUTO_EXACT_LIMIT = 25_000
AUTO_APPROXIMATE = "ivf"


class StaleIndex(ArtifactError):
    """A saved index built from other features than those it is loaded for."""


def resolved_method(method: str, count: int) -> str:
    """The method `method` stands for with `count` rows: "auto" is exact up to
    AUTO_EXACT_LIMIT rows and AUTO_APPROXIMATE above; ConfigError for an unknown name."""
    if method not in SEARCH_METHODS:
        raise ConfigError(f"unknown search method {method!r}; choose one of "
                          f"{', '.join(SEARCH_METHODS)}")
    if method != "auto":
        return method
    return "exact" if count <= AUTO_EXACT_LIMIT else AUTO_APPROXIMATE


@dataclass(frozen=True)
class IndexDescription:
    """What an index is and what it was built from: its method (exact, hnsw, ivf), its size
    (count rows of dim values), the fingerprint of its features, the seed, the method's
    settings, and its recall@k against exact search measured with `recall_queries` held-out rows
    of the collection (1.0 for exact)."""

    method: str
    count: int
    dim: int
    fingerprint: str
    seed: int
    parameters: dict[str, int] = field(default_factory=dict)
    recall: float = 1.0
    recall_k: int = 0
    recall_queries: int = 0


class SearchIndex:
    """Nearest rows of a collection by cosine similarity. Build it with `build`, or read one
    written by `save` with `load`."""

    def __init__(self, description: IndexDescription, backend: ExactSearch | FaissSearch
                 ) -> None:
        self.description, self._backend = description, backend

    @property
    def method(self) -> str:
        """exact, hnsw or ivf."""
        return self.description.method

    @classmethod
    def build(cls, features: np.ndarray, method: str = "auto", seed: int = 0) -> SearchIndex:
        """Index (N, D) features (any float dtype, N >= 1; rows are L2-normalised here) with
        `method`, one of SEARCH_METHODS. An approximate index's search depth is set by
        calibration (recall@10 >= 0.97 against exact search, up to 1,000 rows held out as
        queries while it is built, or the deepest setting); `seed` draws those rows and IVF's
        k-means sample."""
        rows = checked_rows(features, "features")
        if len(rows) == 0:
            raise SlicError("cannot build a search index over an empty collection (0 feature "
                            "rows)")
        chosen = resolved_method(method, len(rows))
        unit = unit_rows(rows)
        described: dict[str, Any] = {}
        backend: ExactSearch | FaissSearch
        if chosen == "exact":
            backend = ExactSearch(unit)
        else:
            backend, measured = calibrated_search(unit, chosen, seed)
            described = {"parameters": backend.parameters(), "recall": measured.recall,
                         "recall_k": measured.k, "recall_queries": measured.queries}
        description = IndexDescription(chosen, len(rows), rows.shape[1],
                                       features_fingerprint(rows), seed, **described)
        return cls(description, backend)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest rows of each of the (Q, D) queries (normalised here): similarities
        (Q, k') float32 and indices (Q, k') int64, best first, k' = min(k, N). Exact search
        orders equal similarities by smaller index; an approximate one may return -1
        (similarity -inf) where it reached fewer than k' rows."""
        k = checked_k(k)
        rows = checked_rows(queries, "queries")
        if rows.shape[1] != self.description.dim:
            raise SlicError(f"queries have {rows.shape[1]} values a row but the index holds "
                            f"{self.description.dim}: embed them with the model that embedded "
                            "the collection")
        return self._backend.search(unit_rows(rows), min(k, self.description.count))

    def save(self, path: Path) -> None:
        """Write the index and its description to `path` atomically (see index_file)."""
        write_index_file(Path(path), asdict(self.description), self._backend.write)

    @classmethod
    def load(cls, path: Path, fingerprint: str | None = None) -> SearchIndex:
        """Read an index `save` wrote. With `fingerprint` (of the features it should match,
        see features_fingerprint), an index built from other features is a StaleIndex.
        ArtifactError (one line, naming `path`) for a missing or damaged file."""
        path = Path(path)

        def read(handle: BinaryIO, header: dict[str, Any]) -> SearchIndex:
            header = {name: value for name, value in header.items() if name != "format_version"}
            description = IndexDescription(**header)
            if description.method == "exact":
                backend: ExactSearch | FaissSearch = ExactSearch.read(handle)
                shape = backend.unit.shape
            elif description.method in APPROXIMATE_METHODS:
                backend = FaissSearch.read(handle, description.method)
                shape = backend.size
                backend.depth = description.parameters[
                    "efSearch" if description.method == "hnsw" else "nprobe"]
            else:
                raise ValueError(f"unknown method {description.method!r}")
            if shape != (description.count, description.dim):
                raise ValueError(f"it holds {shape[0]} x {shape[1]} values, its header says "
                                 f"{description.count} x {description.dim}")
            return cls(description, backend)

        _, index = read_index_file(path, read)
        stored = index.description.fingerprint
        if fingerprint is not None and stored != fingerprint:
            raise StaleIndex(f"{path} was built from other features (fingerprint "
                             f"{stored[:12]}, these are {fingerprint[:12]}); build it again from "
                             "these features or delete it")
        return index
