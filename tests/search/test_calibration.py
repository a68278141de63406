"""Calibration: recall measured with held-out rows as new queries, against the exact neighbours
among the rows the index held, and every row in the finished index under its own number."""

from __future__ import annotations

import numpy as np
import pytest

from stages.search.calibration import (
    TARGET_RECALL,
    _exact_among_rest,
    calibrated_search,
    overlap_recall,
)
from tests.search.clustered import clustered_rows


def test_exact_among_rest_skips_every_held_out_row_even_a_whole_group() -> None:
    # Groups of 30 near-copies; the held-out rows include whole groups, so the search must
    # reach past 30 rows of its own group before the rest begins.
    rng = np.random.default_rng(8)
    groups = clustered_rows(40, dim=16, clusters=40, spread=1.0, seed=8)
    rows = np.repeat(groups, 30, axis=0) + 0.1 * rng.standard_normal((1200, 16))
    unit = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    held = np.sort(np.concatenate([np.arange(0, 60), rng.choice(np.arange(60, 1200), 40,
                                                               replace=False)]))
    rest = np.setdiff1d(np.arange(1200), held)
    similarities = unit[held].astype(np.float64) @ unit[rest].astype(np.float64).T
    expected = rest[np.argsort(-similarities, axis=1, kind="stable")[:, :10]]
    np.testing.assert_array_equal(_exact_among_rest(unit, held, 10), expected)


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_every_row_is_in_the_index_under_its_own_number(method: str) -> None:
    unit = clustered_rows(3_000, seed=9)
    search, calibration = calibrated_search(unit, method, seed=0)
    assert search.size == (3_000, 32)
    assert (calibration.queries, calibration.k) == (300, 10)
    assert calibration.recall >= TARGET_RECALL
    _, found = search.search(unit, 1)
    assert (found[:, 0] == np.arange(3_000)).mean() >= 0.99


def test_too_few_rows_to_hold_out_use_the_deepest_setting() -> None:
    unit = clustered_rows(8, dim=4, seed=10)
    search, calibration = calibrated_search(unit, "ivf", seed=0)
    assert calibration.queries == 0 and search.depth == search.depths[-1]
    _, found = search.search(unit, 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(8))


def test_overlap_recall_counts_shared_neighbours_and_never_minus_one() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [8, 7, 6, 5]])
    assert overlap_recall(found, truth) == pytest.approx(6 / 8)
    assert overlap_recall(np.full((1, 2), -1), np.array([[-1, -1]])) == 0.0
