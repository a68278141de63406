"""SearchIndex: exact results against a brute-force sort, approximate recall against exact,
and the one-line errors of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from stages.find_similar import index_recall
from stages.runtime.errors import ConfigError, SlicError
from stages.search import exact
from stages.search.calibration import overlap_recall
from stages.search.index import AUTO_EXACT_LIMIT, SearchIndex, resolved_method
from tests.search.clustered import clustered_rows


def brute_force(queries: np.ndarray, gallery: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Every similarity in float64, each row sorted by similarity then index."""
    unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)  # noqa: E731
    similarities = unit(queries.astype(np.float64)) @ unit(gallery.astype(np.float64)).T
    order = np.stack([np.lexsort((np.arange(len(gallery)), -row)) for row in similarities])
    return np.take_along_axis(similarities, order, axis=1)[:, :k], order[:, :k]


@pytest.mark.parametrize("rows_per_call", [exact.GALLERY_ROWS, 37])
def test_exact_search_equals_a_brute_force_sort_ties_by_smaller_index(
        rows_per_call: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Rows of four entries of +-1/2: unit length as they are, dot products exact multiples of
    # 1/4, so many similarities tie exactly, also across the k-th place and across the blocks
    # of rows searched one after the other (37 rows: 16 blocks, merged).
    monkeypatch.setattr(exact, "GALLERY_ROWS", rows_per_call)
    rng = np.random.default_rng(0)
    rows = np.zeros((600, 16), np.float32)
    for row in rows:
        row[rng.choice(16, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    queries, gallery = rows[:40], rows[40:]
    index = SearchIndex.build(gallery, "exact")
    similarities, indices = index.search(queries, 25)
    expected_similarities, expected = brute_force(queries, gallery, 25)
    assert indices.dtype == np.int64 and similarities.dtype == np.float32
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(similarities, expected_similarities)


def test_exact_search_on_unnormalised_features_ranks_by_cosine() -> None:
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((500, 24)) * rng.uniform(0.1, 10, size=(500, 1))
    queries = rng.standard_normal((30, 24)) * 7
    similarities, indices = SearchIndex.build(gallery, "exact").search(queries, 10)
    expected_similarities, expected = brute_force(queries, gallery, 10)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(similarities, expected_similarities, atol=1e-6)


def test_k_above_the_collection_size_returns_every_row() -> None:
    gallery = clustered_rows(7, dim=8)
    similarities, indices = SearchIndex.build(gallery, "exact").search(gallery[:3], 50)
    assert indices.shape == similarities.shape == (3, 7)
    assert sorted(indices[0]) == list(range(7)) and indices[0, 0] == 0


@pytest.mark.parametrize(("method", "count"), [("ivf", 20_000), ("hnsw", 5_000)])
def test_approximate_recall_at_10_against_exact_is_at_least_095(method: str,
                                                                count: int) -> None:
    rows = clustered_rows(count + 200, seed=2)
    gallery, queries = rows[:count], rows[count:]  # queries not in the collection
    index = SearchIndex.build(gallery, method, seed=0)
    _, truth = SearchIndex.build(gallery, "exact").search(queries, 10)
    _, found = index.search(queries, 10)
    assert overlap_recall(found, truth) >= 0.95
    described = index.description
    assert described.method == method and described.recall >= 0.97
    if method == "ivf":  # calibration stopped before scanning every list, i.e. approximated
        assert described.parameters["nprobe"] < described.parameters["nlist"]
    # slic search shows what the calibration measured.
    shown = index_recall(described)
    assert shown.startswith(f"{method}: recall@{described.recall_k} {described.recall:.3f}")
    assert f"({described.recall_queries} held-out rows)" in shown
    assert index_recall(SearchIndex.build(gallery[:50], "exact").description) == "exact"


def test_ivf_is_the_same_for_the_same_rows_and_seed() -> None:
    rows = clustered_rows(4_000, seed=3)
    first, second = (SearchIndex.build(rows, "ivf", seed=5) for _ in range(2))
    for a, b in zip(first.search(rows[:100], 10), second.search(rows[:100], 10)):
        np.testing.assert_array_equal(a, b)
    assert first.description == second.description


def test_auto_is_exact_up_to_the_limit_and_ivf_above() -> None:
    assert resolved_method("auto", AUTO_EXACT_LIMIT) == "exact"
    assert resolved_method("auto", AUTO_EXACT_LIMIT + 1) == "ivf"
    assert resolved_method("hnsw", 10) == "hnsw"
    assert SearchIndex.build(clustered_rows(100), "auto").method == "exact"


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("features", "words"), [
    (np.zeros((0, 8), np.float32), "empty collection"),
    (np.zeros(8, np.float32), "shape (8,)"),
    (np.zeros((4, 0), np.float32), "shape (4, 0)"),
    (np.array([[1.0, 2.0], [np.nan, 1.0], [0.0, np.inf]]), "2 rows hold NaN or Inf (first: row 1)"),
    ([["a", "b"]], "numeric"),
])
def test_bad_features_are_one_line_errors(features: object, words: str) -> None:
    with pytest.raises(SlicError) as error:
        SearchIndex.build(features, "exact")  # type: ignore[arg-type]
    assert words in _one_line(error)


def test_an_unknown_method_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as error:
        SearchIndex.build(clustered_rows(10), "annoy")
    assert "'annoy'" in _one_line(error) and "hnsw" in str(error.value)


@pytest.mark.parametrize("k", [0, -3, 2.5, True, "10"])
def test_k_below_one_or_not_whole_is_a_one_line_error(k: object) -> None:
    index = SearchIndex.build(clustered_rows(20), "exact")
    with pytest.raises(SlicError) as error:
        index.search(clustered_rows(2), k)  # type: ignore[arg-type]
    assert repr(k) in _one_line(error)


@pytest.mark.parametrize("method", ["exact", "ivf"])
def test_queries_of_another_dimension_are_a_one_line_error(method: str) -> None:
    index = SearchIndex.build(clustered_rows(400, dim=32), method)
    with pytest.raises(SlicError) as error:
        index.search(clustered_rows(2, dim=16), 5)
    assert "16 values a row" in _one_line(error) and "holds 32" in str(error.value)
