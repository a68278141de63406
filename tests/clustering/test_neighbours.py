import sys

import numpy as np
import pytest
import torch

from stages.clustering import neighbours as nb
from stages.clustering.finch import cluster_sums
from stages.clustering.neighbours import exact_first_neighbours, normalised


def brute_force(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First neighbours by float64 similarities, ties to the smaller index."""
    similarity = unit.astype(np.float64) @ unit.astype(np.float64).T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1), similarity.max(axis=1)


def near_ties(seed: int, n: int, dim: int) -> np.ndarray:
    """Clustered rows, with duplicates and rows a hair apart, so bfloat16 cannot rank them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 20, dim))
    rows = centres[rng.integers(len(centres), size=n)] + 0.3 * rng.normal(size=(n, dim))
    rows[1::17] = rows[0::17][: len(rows[1::17])]  # exact duplicates
    rows[2::13] += 1e-4 * rng.normal(size=rows[2::13].shape)
    return normalised(rows.astype(np.float32))


@pytest.mark.parametrize("dim", [3, 64, 512])
def test_rounding_error_bound_holds(dim):
    unit = near_ties(dim, 400, dim)
    exact = unit.astype(np.float64) @ unit.astype(np.float64).T
    low = torch.from_numpy(unit).to(torch.bfloat16)
    computed = (low @ low.T).double().numpy()
    assert np.abs(computed - exact).max() <= nb.similarity_error_bound(dim, "bfloat16")
    assert nb.similarity_error_bound(dim, "float32") < 1e-4


@pytest.mark.parametrize("screening", ["bfloat16", "float32"])
@pytest.mark.parametrize("block", [64, 4096])
def test_exact_search_equals_brute_force(monkeypatch, screening, block):
    monkeypatch.setattr(nb, "BLOCK_ROWS", block)
    monkeypatch.setattr(nb, "RESCORE_CHUNK", 500)
    unit = near_ties(0, 700, 48)
    expected, similarity = brute_force(unit)
    found, score = exact_first_neighbours(unit, screening)
    assert np.array_equal(found, expected)
    assert np.allclose(score, similarity, atol=1e-12)


def test_duplicates_and_zero_rows_are_handled():
    unit = normalised(np.array([[1, 0], [1, 0], [0, 1], [0, 0], [0.9, 0.1]], np.float32))
    found, score = exact_first_neighbours(unit, "bfloat16")
    assert found.tolist() == [1, 0, 4, 0, 0]
    assert score[3] == 0.0


def test_thresholds_round_down_never_up():
    values = np.random.default_rng(0).normal(size=10_000)
    rounded = nb._round_down(values)
    assert rounded.dtype == np.float32
    assert (rounded <= values).all()
    assert (np.abs(values - rounded) <= np.abs(values) * 2.0**-23).all()


def test_bfloat16_screening_only_where_it_repays_importing_torch(monkeypatch):
    monkeypatch.setattr(nb, "fast_bfloat16", lambda: True)
    monkeypatch.delitem(sys.modules, "torch")
    assert nb.default_screening(20_000, 512) == "float32"
    assert nb.default_screening(50_000, 512) == "bfloat16"
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert nb.default_screening(20_000, 512) == "bfloat16"  # loaded already: no cost
    monkeypatch.setattr(nb, "fast_bfloat16", lambda: False)
    assert nb.default_screening(50_000, 512) == "float32"


def test_cluster_sums_add_the_rows_of_each_label():
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    sums = cluster_sums(rows, np.array([2, 0, 2, 1, 0, 2]), 3)
    assert sums.dtype == np.float64
    assert sums.tolist() == [[10, 12], [6, 7], [14, 17]]


def test_cluster_sums_across_chunks_equal_a_loop(monkeypatch):
    import stages.clustering.finch as finch_module

    monkeypatch.setattr(finch_module, "SUM_CHUNK_ROWS", 4)  # several chunks of rows
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(23, 5)).astype(np.float32)
    labels = rng.integers(0, 3, size=23)
    sums = cluster_sums(rows, labels, 3)
    expected = [rows[labels == k].astype(np.float64).sum(axis=0) for k in range(3)]
    np.testing.assert_allclose(sums, expected, rtol=1e-12)
