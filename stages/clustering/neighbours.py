"""First neighbours by cosine similarity: exact, or approximate with faiss (IVF, HNSW).

The exact search is the floor of FINCH's cost. It runs in two passes that give the exact
answer together:

1. Similarities of all pairs in bfloat16 (3.4x the fp32 matrix-product rate on CPUs with
   AVX512-BF16), one block of rows against one block of columns at a time, each block pair
   once (the matrix is symmetric), keeping every pair whose rounded similarity lies within
   twice the rounding error bound of its row's best: a set that provably holds the true
   first neighbour.
2. Those candidates are scored again in float32, the few within float32's error bound of
   their row's best once more in float64, and the best one wins (ties: the smaller index).

Memory stays O(N x D): one block of similarities at a time, and a few candidates per row.
"""

from __future__ import annotations

import functools
from pathlib import Path

import faiss
import numpy as np
import torch

NEIGHBOUR_SEARCHES = ("exact", "ivf", "hnsw", "auto")
AUTO_EXACT_LIMIT = 50_000  # --nn auto: exact search up to this many points, HNSW above
ALWAYS_EXACT_LIMIT = 4_096  # below this, exact search is cheap: no method approximates
BLOCK_ROWS = 2_048  # rows (and columns) of one block of similarities
RESCORE_CHUNK = 2048  # candidate pairs scored at a time (their rows fit in cache)


def normalised(features: np.ndarray) -> np.ndarray:
    """(N, D) float32 rows scaled to unit length (zero rows stay zero)."""
    matrix = np.array(features, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(matrix)
    return matrix


@functools.cache
def fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def similarity_error_bound(dim: int, dtype: torch.dtype) -> float:
    """Largest |computed - exact| cosine similarity of two unit rows of `dim` values, when
    both are rounded to `dtype`, multiplied with float32 accumulation and the result is
    rounded to `dtype` again (round to nearest: unit roundoff 2^-8 for bfloat16, 2^-24 for
    float32). Input rounding: 2u + u^2; accumulation: gamma_D (1 + u)^2; output: u (1 + u)^2
    (1 + gamma_D); rows of norm 1 + 1e-6 at most.
    """
    unit = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-24
    gamma = dim * 2.0**-24 / (1 - dim * 2.0**-24)
    bound = 2 * unit + unit**2 + gamma * (1 + unit) ** 2 + unit * (1 + unit) ** 2 * (1 + gamma)
    return bound * (1 + 1e-5) + 1e-7


def _round_down(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`values` (float32) in `dtype`, each rounded to a representable value not above it."""
    rounded = values.to(dtype)
    lower = torch.nextafter(rounded, torch.full_like(rounded, -torch.inf))
    return torch.where(rounded.float() > values, lower, rounded)


def _candidate_pairs(unit: torch.Tensor, dtype: torch.dtype
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(queries, neighbours) int64 pairs that include every row's exact first neighbour.

    A pair is kept when its rounded similarity is within 2 * bound of the best rounded
    similarity its row has seen so far; the best only grows, so the kept set contains every
    pair within 2 * bound of the row's final best, and the true first neighbour j* is among
    them: for any j left out, s(j) <= s~(j) + bound < s~(j*') - bound <= s(j*'), where j*' is
    the row's best rounded pair.
    """
    count = len(unit)
    low = unit.to(dtype)
    window = 2 * similarity_error_bound(unit.shape[1], dtype)
    best = torch.full((count,), -torch.inf)
    queries, neighbours = [], []

    def threshold(similarities: torch.Tensor, queried: slice, along: int) -> torch.Tensor:
        """Update the best of the block's rows (along=1) or columns (along=0); return their
        thresholds, rounded down to the block's precision so that no candidate is lost, and
        unreachable for queries whose best in this block is far below their best so far."""
        block_best = similarities.amax(dim=along).float()
        best[queried] = torch.maximum(best[queried], block_best)
        limit = _round_down(best[queried] - window, similarities.dtype)
        limit[block_best < best[queried] - window] = torch.inf
        return limit

    for top in range(0, count, BLOCK_ROWS):
        rows = slice(top, min(top + BLOCK_ROWS, count))
        for left in range(top, count, BLOCK_ROWS):
            columns = slice(left, min(left + BLOCK_ROWS, count))
            similarities = low[rows] @ low[columns].T
            if left == top:
                similarities.fill_diagonal_(-torch.inf)  # a point is not its own neighbour
            row_limit = threshold(similarities, rows, along=1)[:, None]
            if left == top:  # a diagonal block holds both orders of its pairs
                row, column = torch.nonzero(similarities >= row_limit, as_tuple=True)
                queries.append(row + top)
                neighbours.append(column + left)
                continue
            # Each pair of an off-diagonal block is a candidate for its row, its column or
            # both: one scan finds them all.
            column_limit = threshold(similarities, columns, along=0)[None, :]
            hits = similarities >= row_limit
            hits |= similarities >= column_limit
            row, column = torch.nonzero(hits, as_tuple=True)
            value = similarities[row, column]
            for query, neighbour, first_query, first_neighbour, limit in (
                    (row, column, top, left, row_limit[:, 0][row]),
                    (column, row, left, top, column_limit[0][column])):
                kept = value >= limit
                queries.append(query[kept] + first_query)
                neighbours.append(neighbour[kept] + first_neighbour)
    return torch.cat(queries), torch.cat(neighbours)


def _pair_scores(rows: torch.Tensor, queries: torch.Tensor, neighbours: torch.Tensor
                 ) -> torch.Tensor:
    """(M,) dot products of the row pairs, in the rows' dtype, a cache-sized chunk at a time."""
    scores = torch.empty(len(queries), dtype=rows.dtype)
    for start in range(0, len(queries), RESCORE_CHUNK):
        part = slice(start, start + RESCORE_CHUNK)
        scores[part] = torch.linalg.vecdot(rows.index_select(0, queries[part]),
                                           rows.index_select(0, neighbours[part]))
    return scores


def _near_row_best(queries: torch.Tensor, scores: torch.Tensor, window: float,
                   count: int) -> torch.Tensor:
    """(M,) bool: the pairs scoring within `window` of the best pair of their query."""
    best = torch.full((count,), -torch.inf, dtype=scores.dtype)
    best.scatter_reduce_(0, queries, scores, "amax")
    return scores >= best[queries] - window


def exact_first_neighbours(unit: np.ndarray, screening: torch.dtype | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Exact first neighbour of every unit row (N >= 2) and its float64 cosine similarity.

    Ties go to the smaller index. `screening` is the precision of the first pass (default:
    bfloat16 where the CPU has it natively, else float32); it changes the speed, never the
    result. The candidates are scored in float32, and those within float32's error bound of
    their row's best again in float64. Returns (N,) int64 and (N,) float64.
    """
    rows = torch.from_numpy(unit)
    if screening is None:
        screening = torch.bfloat16 if fast_bfloat16() else torch.float32
    queries, neighbours = _candidate_pairs(rows, screening)
    close = _near_row_best(queries, _pair_scores(rows, queries, neighbours),
                           2 * similarity_error_bound(unit.shape[1], torch.float32), len(rows))
    queries, neighbours = queries[close], neighbours[close]
    scores = _pair_scores(rows.double(), queries, neighbours).numpy()
    queries, neighbours = queries.numpy(), neighbours.numpy()
    order = np.lexsort((neighbours, -scores, queries))
    first = order[np.r_[True, queries[order][1:] != queries[order][:-1]]]
    return neighbours[first].astype(np.int64), scores[first]


def _approximate_index(matrix: np.ndarray, method: str) -> faiss.Index:
    """A faiss inner-product index over unit rows: HNSW or IVF.

    HNSW is the approximate default (auto above 50,000 points): on noisy clustered data its
    first neighbours are right far more often than IVF's at the same time (benchmarks/
    RESULTS.md). Its graph is built on one thread, because a parallel build differs from run
    to run; searches use every thread.
    """
    count, dim = matrix.shape
    if method == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = 40, 128
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            index.add(matrix)
        finally:
            faiss.omp_set_num_threads(threads)
        return index
    lists = int(max(1, min(4 * np.sqrt(count), count // 39)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    index.train(matrix[np.random.default_rng(0).permutation(count)[: lists * 64]]
                if count > lists * 64 else matrix)
    index.nprobe = min(lists, 16)
    index.add(matrix)
    return index


def _approximate_first_neighbours(matrix: np.ndarray, method: str
                                  ) -> tuple[np.ndarray, np.ndarray]:
    similarity, neighbours = _approximate_index(matrix, method).search(matrix, 2)
    own = np.arange(len(matrix))
    # A duplicate of a point may come back before the point itself: take the first other one.
    # An approximate search may miss every other point (-1): the point then links to itself.
    second = neighbours[:, 0] == own
    chosen = np.where(second, neighbours[:, 1], neighbours[:, 0])
    best = np.where(second, similarity[:, 1], similarity[:, 0]).astype(np.float64)
    missing = chosen < 0
    chosen[missing], best[missing] = own[missing], -np.inf
    return chosen.astype(np.int64), best


def first_neighbours(features: np.ndarray, method: str = "exact"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """First neighbour of every row by cosine similarity, never the row itself.

    `method` is one of NEIGHBOUR_SEARCHES (auto: exact up to AUTO_EXACT_LIMIT rows). Returns
    (N,) int64 indices and (N,) float32 cosine distances (1 - similarity; inf where an
    approximate search found no other point).
    """
    matrix = normalised(features)
    count = len(matrix)
    if method == "auto":
        method = "exact" if count <= AUTO_EXACT_LIMIT else "hnsw"
    if method == "exact" or count <= ALWAYS_EXACT_LIMIT:
        chosen, similarity = exact_first_neighbours(matrix)
    else:
        chosen, similarity = _approximate_first_neighbours(matrix, method)
    return chosen, (1.0 - similarity).astype(np.float32)
