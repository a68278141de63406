"""Retrieval and classification measures against counts made by hand on small known cases:
every figure here was worked out on paper from the arrays written in the test."""

import numpy as np
import pytest

from stages.evaluation.classification import (
    confusion_matrix,
    per_class_accuracy,
    top_k_accuracy,
)
from stages.evaluation.recall import per_class_recall
from stages.evaluation.retrieval import (
    nearest_neighbours,
    recall_at_k,
    retrieval_recall,
    unit_rows,
)

# Five queries of classes 0, 0, 1, 1, 2 and the classes of their first three neighbours.
QUERY_LABELS = np.array([0, 0, 1, 1, 2])
NEIGHBOUR_LABELS = np.array([
    [0, 1, 2],  # hit at rank 1
    [1, 0, 0],  # hit at rank 2
    [0, 2, 1],  # hit at rank 3
    [1, 1, 0],  # hit at rank 1
    [0, 1, 0],  # never
])
NAMES = ["Walk", "Run", "Jump"]


def test_recall_at_k_counts_the_first_hit_within_k():
    recall = recall_at_k(QUERY_LABELS, NEIGHBOUR_LABELS, (1, 2, 3))
    assert recall == {1: pytest.approx(2 / 5), 2: pytest.approx(3 / 5), 3: pytest.approx(4 / 5)}


@pytest.mark.parametrize("k, expected", [
    (1, {"Walk": 1 / 2, "Run": 1 / 2, "Jump": 0.0}),
    (2, {"Walk": 2 / 2, "Run": 1 / 2, "Jump": 0.0}),
    (3, {"Walk": 2 / 2, "Run": 2 / 2, "Jump": 0.0}),
])
def test_per_class_recall_equals_a_count_by_hand(k, expected):
    rows = per_class_recall(QUERY_LABELS, NEIGHBOUR_LABELS, k, NAMES)
    assert [row["class"] for row in rows] == ["Walk", "Run", "Jump"]
    assert [row["queries"] for row in rows] == [2, 2, 1]
    assert {row["class"]: row[f"r{k}"] for row in rows} == pytest.approx(expected)


def test_per_class_recall_names_a_label_without_a_name_by_its_number():
    rows = per_class_recall(np.array([3]), np.array([[3]]), 1, NAMES)
    assert rows == [{"class": "3", "queries": 1, "r1": 1.0}]


def test_nearest_neighbours_rank_by_cosine_and_break_ties_by_index():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]], np.float32)
    queries = np.array([[3.0, 0.1], [0.0, -1.0]], np.float32)
    similarities, indices = nearest_neighbours(queries, gallery, 3)
    # Rows 0 and 2 point the same way (a tie, the smaller index first), then row 3 at 45°.
    assert indices[0].tolist() == [0, 2, 3]
    # Straight down: rows 0 and 2 at 90° (a tie again), row 3 at 135°, row 1 at 180°.
    assert indices[1].tolist() == [0, 2, 3]
    assert similarities[1].tolist() == pytest.approx([0.0, 0.0, -np.sqrt(0.5)], abs=1e-6)
    assert similarities[0, 2] == pytest.approx(np.cos(np.arctan2(0.1, 3.0) - np.pi / 4),
                                               abs=1e-6)
    recall = retrieval_recall(queries, np.array([1, 0]), gallery, np.array([1, 0, 0, 0]),
                              (1, 2))
    assert recall == {1: pytest.approx(0.5), 2: pytest.approx(1.0)}


def test_a_tie_across_the_kth_place_keeps_the_smaller_gallery_indices():
    # Five copies of one direction: any two of them could fill k = 2; the first two must.
    gallery = np.array([[0.0, 1.0]] + [[1.0, 0.0]] * 5, np.float32)
    _, indices = nearest_neighbours(np.array([[1.0, 0.0]], np.float32), gallery, 2)
    assert indices.tolist() == [[1, 2]]


def test_blocked_search_equals_a_full_sort_of_every_similarity(monkeypatch):
    monkeypatch.setattr("stages.evaluation.retrieval.QUERY_BLOCK", 7)  # several blocks
    rng = np.random.default_rng(0)
    gallery = rng.integers(-2, 3, (40, 3)).astype(np.float32)  # many exact ties
    queries = rng.integers(-2, 3, (23, 3)).astype(np.float32)
    similarities, indices = nearest_neighbours(queries, gallery, 6)
    full = unit_rows(queries) @ unit_rows(gallery).T
    for row, scores in enumerate(full):
        expected = np.lexsort((np.arange(len(gallery)), -scores))[:6]
        assert indices[row].tolist() == expected.tolist()
        assert similarities[row] == pytest.approx(scores[expected], abs=1e-6)
    assert nearest_neighbours(queries, gallery, 99)[1].shape == (23, 40)


def test_confusion_rows_are_true_classes_and_columns_predictions():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    predicted = np.array([0, 0, 0, 1, 0, 0, 1, 1, 1])
    matrix = confusion_matrix(predicted, labels, 4)
    expected = np.zeros((4, 4), np.int64)
    expected[0, 0], expected[0, 1] = 3, 1
    expected[1, 0], expected[1, 1] = 2, 2
    expected[2, 1] = 1
    assert np.array_equal(matrix, expected)


def test_per_class_accuracy_is_the_diagonal_over_the_row_of_true_videos():
    # Columns sum differently from rows, so dividing by a column would show.
    matrix = np.array([[3, 1, 0, 0],
                       [2, 2, 0, 0],
                       [0, 1, 0, 0],
                       [0, 0, 0, 0]])
    rows = per_class_accuracy(matrix, ["a", "b", "c", "d"])
    assert rows == [{"class": "a", "videos": 4, "accuracy": 0.75},
                    {"class": "b", "videos": 4, "accuracy": 0.5},
                    {"class": "c", "videos": 1, "accuracy": 0.0}]  # d has no test video


def test_top_k_accuracy_by_hand():
    probabilities = np.array([[0.5, 0.3, 0.2],
                              [0.1, 0.2, 0.7],
                              [0.3, 0.3, 0.4],  # tie of 0 and 1 below the best: 0 ranks first
                              [0.2, 0.5, 0.3]])
    labels = np.array([0, 1, 1, 2])
    assert top_k_accuracy(probabilities, labels, 1) == pytest.approx(1 / 4)
    assert top_k_accuracy(probabilities, labels, 2) == pytest.approx(3 / 4)
    assert top_k_accuracy(probabilities, labels, 3) == pytest.approx(1.0)


def test_confusion_counts_are_int64_however_many_videos():
    matrix = confusion_matrix(np.array([1, 1, 0]), np.array([1, 0, 0]), 2)
    assert matrix.dtype == np.int64 and matrix.tolist() == [[1, 1], [0, 1]]


def test_top_k_accuracy_breaks_ties_by_the_lower_class_among_many():
    """20 classes at 0.01 then 20 at 0.04: the top-1 of a tie of 20 is the first, class 20,
    as for the 3-class tie above; a sort that leaves ties to chance picks any of them."""
    probabilities = np.array([[0.01] * 20 + [0.04] * 20] * 2)
    labels = np.array([20, 21])
    assert top_k_accuracy(probabilities, labels, 1) == pytest.approx(1 / 2)
    assert top_k_accuracy(probabilities, labels, 2) == pytest.approx(1.0)


def test_unit_rows_are_float32_of_length_one_and_zero_rows_stay_zero():
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]))  # float64 in
    assert rows.dtype == np.float32  # what faiss takes
    assert np.allclose(rows, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], rtol=0, atol=1e-7)
    assert unit_rows(np.array([[0.0, 0.0]], np.float32)).dtype == np.float32
