"""First neighbours by cosine similarity: exact, or approximate with faiss (IVF, HNSW).

The exact search is the floor of FINCH's cost. It runs in two passes that give the exact
answer together:

1. Similarities of all pairs in the screening precision, one block of rows against one block
   of columns at a time, each block pair once (the matrix is symmetric), keeping every pair
   whose computed similarity lies within twice the rounding error bound of its row's best: a
   set that provably holds the true first neighbour. The screen is float32 through numpy's
   BLAS, or bfloat16 (3.4x float32's matrix-product rate on CPUs with AVX512-BF16) when the
   CPU has it and torch is already loaded (a training run) or the search is big enough to
   repay importing it: `slic cluster` does not wait seconds for torch on a small search.
2. Those candidates are scored again in float32, the few within float32's error bound of
   their row's best once more in float64, and the best one wins (ties: the smaller index).

Memory stays O(N x D): one block of similarities at a time, and a few candidates per row.
faiss loads only for the approximate searches.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

AUTO_EXACT_LIMIT = 50_000  # --nn auto: exact search up to this many points, HNSW above
ALWAYS_EXACT_LIMIT = 4_096  # below this, exact search is cheap: no method approximates
BLOCK_ROWS = 2_048  # rows (and columns) of one block of similarities
RESCORE_CHUNK = 2048  # candidate pairs scored at a time (their rows fit in cache)
SCREENINGS = ("float32", "bfloat16")
# Multiply-adds of an all-pairs screen (count^2 x dim) above which bfloat16's 3.4x faster
# products save more than importing torch costs (2-5 s): about 44,000 x 44,000 x 512.
BFLOAT16_WORTH_IMPORTING_TORCH = 1e12
UNIT_ROUNDOFF = {"float32": 2.0**-24, "bfloat16": 2.0**-8}

# (rows, columns) -> (rows, columns) float32 similarities of two blocks of rows
BlockProduct = Callable[[slice, slice], np.ndarray]


def normalised(features: np.ndarray) -> np.ndarray:
    """(N, D) float32 rows scaled to unit length (zero rows stay zero)."""
    matrix = np.array(features, dtype=np.float32, order="C", copy=True)
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64))
    matrix /= np.where(norms > 0, norms, 1.0).astype(np.float32)[:, None]
    return matrix


@functools.cache
def fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def default_screening(count: int, dim: int) -> str:
    """bfloat16 where the CPU has it and either torch is loaded already or the search is big
    enough (count^2 x dim multiply-adds) for bfloat16's speed to repay importing torch; else
    float32."""
    if not fast_bfloat16():
        return "float32"
    worth_importing = count * count * dim >= BFLOAT16_WORTH_IMPORTING_TORCH
    return "bfloat16" if "torch" in sys.modules or worth_importing else "float32"


def similarity_error_bound(dim: int, screening: str) -> float:
    """Largest |computed - exact| cosine similarity of two unit rows of `dim` values, when
    both are rounded to the `screening` precision, multiplied with float32 accumulation and
    the result is rounded to that precision again (round to nearest: unit roundoff 2^-8 for
    bfloat16, 2^-24 for float32). Input rounding: 2u + u^2; accumulation: gamma_D (1 + u)^2;
    output: u (1 + u)^2 (1 + gamma_D); rows of norm 1 + 1e-6 at most.
    """
    unit = UNIT_ROUNDOFF[screening]
    gamma = dim * 2.0**-24 / (1 - dim * 2.0**-24)
    bound = 2 * unit + unit**2 + gamma * (1 + unit) ** 2 + unit * (1 + unit) ** 2 * (1 + gamma)
    return bound * (1 + 1e-5) + 1e-7


def _round_down(values: np.ndarray) -> np.ndarray:
    """float64 `values` as float32, each rounded to a representable value not above it."""
    rounded = values.astype(np.float32)
    return np.where(rounded > values, np.nextafter(rounded, np.float32(-np.inf)), rounded)


def _block_product(unit: np.ndarray, screening: str) -> BlockProduct:
    """Similarities of two blocks of unit rows, computed in the `screening` precision. The
    float32 product is written into one buffer reused for every block (the result is valid
    until the next call): a fresh 16 MB array a block would be page-faulted in anew."""
    if screening == "float32":
        buffer = np.empty(BLOCK_ROWS * BLOCK_ROWS, dtype=np.float32)

        def product(rows: slice, columns: slice) -> np.ndarray:
            left, right = unit[rows], unit[columns]
            out = buffer[:len(left) * len(right)].reshape(len(left), len(right))
            return np.matmul(left, right.T, out=out)

        return product
    import torch  # only here: the caller has torch loaded (default_screening) or asked for it

    low = torch.from_numpy(unit).to(torch.bfloat16)
    return lambda rows, columns: (low[rows] @ low[columns].T).float().numpy()


def _candidate_pairs(unit: np.ndarray, screening: str) -> tuple[np.ndarray, np.ndarray]:
    """(queries, neighbours) int64 pairs that include every row's exact first neighbour.

    While the blocks are screened, a pair is collected when its screened similarity is within
    2 * bound of the best its row has seen so far (the best only grows, so nothing the final
    filter needs is missed); at the end only the pairs within 2 * bound of the row's final
    best stay. The true first neighbour j* is among them: for any j left out, s(j) <= s~(j) +
    bound < s~(j*') - bound <= s(j*'), where j*' is the row's best screened pair. Thresholds
    are rounded down to float32, never up.
    """
    count = len(unit)
    product = _block_product(unit, screening)
    window = 2 * similarity_error_bound(unit.shape[1], screening)
    best = np.full(count, -np.inf)
    queries: list[np.ndarray] = []
    neighbours: list[np.ndarray] = []
    values: list[np.ndarray] = []

    def threshold(block_best: np.ndarray, queried: slice) -> np.ndarray:
        """Update the best of the queried rows; return their thresholds, unreachable (inf)
        for rows whose best in this block is far below their best so far."""
        best[queried] = np.maximum(best[queried], block_best)
        lowest = best[queried] - window
        return np.where(block_best >= lowest, _round_down(lowest), np.float32(np.inf))

    def keep(similarities: np.ndarray, limit: np.ndarray, first_query: int,
             first_neighbour: int, along_columns: bool) -> None:
        """Collect the pairs whose similarity reaches their query's threshold; the queries are
        the block's rows, or its columns (`along_columns`). Inactive queries (inf) are skipped:
        when most are inactive, only the active ones are compared."""
        active = np.flatnonzero(limit != np.inf)
        if len(active) == 0:
            return
        if 4 * len(active) >= len(limit):
            part, active = similarities, np.arange(len(limit))
        else:
            part, limit = (similarities[:, active] if along_columns
                           else similarities[active]), limit[active]
        # flatnonzero and divmod: several times faster than a 2-D nonzero
        flat = np.flatnonzero(part >= (limit if along_columns else limit[:, None]))
        row, column = np.divmod(flat, part.shape[1])
        query, neighbour = (column, row) if along_columns else (row, column)
        queries.append(active[query] + first_query)
        neighbours.append(neighbour + first_neighbour)
        values.append(part.ravel()[flat])

    for top in range(0, count, BLOCK_ROWS):
        rows = slice(top, min(top + BLOCK_ROWS, count))
        for left in range(top, count, BLOCK_ROWS):
            columns = slice(left, min(left + BLOCK_ROWS, count))
            similarities = product(rows, columns)
            if left == top:
                np.fill_diagonal(similarities, -np.inf)  # a point is not its own neighbour
            # Each pair of an off-diagonal block is a candidate for its row, its column or
            # both; a diagonal block holds both orders of its pairs, so rows suffice.
            keep(similarities, threshold(similarities.max(axis=1), rows), top, left, False)
            if left != top:
                keep(similarities, threshold(similarities.max(axis=0), columns), left, top,
                     True)
    query, neighbour = np.concatenate(queries), np.concatenate(neighbours)
    close = np.concatenate(values) >= best[query] - window  # float64: exact
    return query[close].astype(np.int64), neighbour[close].astype(np.int64)


def _pair_scores(rows: np.ndarray, queries: np.ndarray, neighbours: np.ndarray,
                 dtype: type = np.float32) -> np.ndarray:
    """(M,) dot products of the row pairs in `dtype`, a cache-sized chunk at a time; only the
    rows of the pairs are converted, never the whole (N, D) matrix."""
    scores = np.empty(len(queries), dtype=dtype)
    for start in range(0, len(queries), RESCORE_CHUNK):
        part = slice(start, start + RESCORE_CHUNK)
        scores[part] = np.einsum("ij,ij->i", rows[queries[part]].astype(dtype, copy=False),
                                 rows[neighbours[part]].astype(dtype, copy=False))
    return scores


def _near_row_best(queries: np.ndarray, scores: np.ndarray, window: float,
                   count: int) -> np.ndarray:
    """(M,) bool: the pairs scoring within `window` of the best pair of their query."""
    best = np.full(count, -np.inf, dtype=scores.dtype)
    np.maximum.at(best, queries, scores)
    return scores >= best[queries] - window


def exact_first_neighbours(unit: np.ndarray, screening: str | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Exact first neighbour of every unit row (N >= 2) and its float64 cosine similarity.

    Ties go to the smaller index. `screening` is the precision of the first pass, one of
    SCREENINGS (default: `default_screening`); it changes the speed, never the result. The
    candidates are scored in float32, and those within float32's error bound of their row's
    best again in float64. Returns (N,) int64 and (N,) float64.
    """
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    queries, neighbours = _candidate_pairs(unit, screening or default_screening(*unit.shape))
    close = _near_row_best(queries, _pair_scores(unit, queries, neighbours),
                           2 * similarity_error_bound(unit.shape[1], "float32"), len(unit))
    queries, neighbours = queries[close], neighbours[close]
    scores = _pair_scores(unit, queries, neighbours, np.float64)
    order = np.lexsort((neighbours, -scores, queries))
    first = order[np.r_[True, queries[order][1:] != queries[order][:-1]]]
    return neighbours[first], scores[first]


def _approximate_index(matrix: np.ndarray, method: str) -> faiss.Index:
    """A faiss inner-product index over unit rows: HNSW or IVF.

    HNSW is the approximate default (auto above 50,000 points): on noisy clustered data its
    first neighbours are right far more often than IVF's at the same time (benchmarks/
    RESULTS.md). Its graph is built on one thread, because a parallel build differs from run
    to run; searches use every thread.
    """
    import faiss  # loads only for the approximate searches

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
