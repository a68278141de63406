"""Collapse measures against their definitions, and the warning they raise."""

import numpy as np
import pytest

from stages.evaluation import collapse
from stages.evaluation.collapse import collapse_warning, effective_rank, embedding_health


def brute_force(features: np.ndarray) -> tuple[float, float]:
    """Mean cosine and uniformity by a loop over ordered pairs of distinct rows."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosines, kernels = [], []
    for i in range(len(unit)):
        for j in range(len(unit)):
            if i != j:
                cosines.append(unit[i] @ unit[j])
                kernels.append(np.exp(-2 * np.sum((unit[i] - unit[j]) ** 2)))
    return float(np.mean(cosines)), float(np.log(np.mean(kernels)))


def test_measures_equal_their_definitions_on_random_rows():
    features = np.random.default_rng(0).normal(size=(30, 6)) + 0.5
    health = embedding_health(features)
    cosine, uniformity = brute_force(features)
    assert health["mean_cosine"] == pytest.approx(cosine, abs=1e-12)
    assert health["uniformity"] == pytest.approx(uniformity, abs=1e-12)
    assert 1.0 < health["effective_rank"] < 6.0


def test_one_direction_is_collapse_and_orthogonal_rows_are_not():
    collapsed = embedding_health(np.tile([[1.0, 2.0, 3.0, 4.0]], (10, 1)))
    assert collapsed["mean_cosine"] == pytest.approx(1.0)
    assert collapsed["uniformity"] == pytest.approx(0.0, abs=1e-12)
    assert collapsed["effective_rank"] == pytest.approx(1.0)
    warning = collapse_warning(collapsed, 4)
    assert warning is not None and "pretrain.cluster_warmup_epochs" in warning
    spread = embedding_health(np.eye(8))
    assert spread["mean_cosine"] == pytest.approx(0.0, abs=1e-12)
    assert spread["uniformity"] == pytest.approx(-4.0)  # every pair at squared distance 2
    assert spread["effective_rank"] == pytest.approx(8.0)
    assert collapse_warning(spread, 8) is None


def test_large_sets_use_a_seeded_sample_for_the_pairwise_measures(monkeypatch):
    monkeypatch.setattr(collapse, "PAIR_SAMPLE", 50)
    features = np.random.default_rng(1).normal(size=(400, 5))
    first, again = embedding_health(features, seed=3), embedding_health(features, seed=3)
    assert first == again
    full_cosine, _ = brute_force(features[:200])
    assert abs(first["mean_cosine"] - full_cosine) < 0.1


def test_the_sample_is_drawn_from_every_part_of_the_rows(monkeypatch):
    """The first half of the rows share one direction, the second half are spread: a sample
    from all rows sees both (mean cosine near a quarter); the first rows alone would read 1."""
    monkeypatch.setattr(collapse, "PAIR_SAMPLE", 200)
    spread = np.random.default_rng(0).normal(size=(400, 16))
    features = np.concatenate([np.ones((400, 16)), spread])
    health = embedding_health(features, seed=1)
    assert 0.1 < health["mean_cosine"] < 0.45
    samples = {embedding_health(features, seed=seed)["mean_cosine"] for seed in range(4)}
    assert len(samples) == 4  # the seed picks the sample


@pytest.mark.parametrize("cosine, rank, dim, collapsed", [
    (0.95, 5.0, 16, True),  # one direction, however many dimensions are in use
    (0.9, 10.0, 16, True),  # the cosine bound itself counts as collapse
    (0.89, 10.0, 16, False),
    (0.1, 2.0, 16, False),  # two dimensions in use is the least that is not collapse
    (0.1, 1.9, 16, True),
    (0.1, 1.5, 5, True),  # few dimensions used out of 5 ...
    (0.1, 1.5, 4, True),  # ... or out of 4 (2 x the rank bound) is collapse
    (0.1, 1.5, 3, False),  # under 4 dimensions a low rank alone is no collapse
])
def test_collapse_is_warned_about_at_the_bounds(cosine: float, rank: float, dim: int,
                                                collapsed: bool):
    health = {"mean_cosine": cosine, "uniformity": -1.0, "effective_rank": rank}
    assert (collapse_warning(health, dim) is not None) == collapsed


def test_the_warning_gives_the_numbers_and_what_to_try():
    warning = collapse_warning({"mean_cosine": 0.95, "uniformity": -0.1,
                                "effective_rank": 1.34}, 128)
    assert warning is not None
    for words in ("mean cosine 0.950, effective rank 1.3 of 128",
                  "before any training step this is BatchNorm at its initial statistics (give "
                  "pretrain.cluster_warmup_epochs a few epochs)",
                  "later, check the pseudo-labels (pos FP in metrics.jsonl)",
                  "positive_distance/negative_distance against pretrain.margin"):
        assert words in warning


def test_unit_rows_scale_every_nonzero_row_to_length_one_and_keep_zero_rows():
    unit = collapse._unit_rows(np.array([[0.3, 0.4], [0.0, 0.0], [-6.0, 8.0]]))
    assert unit.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0],
                             [pytest.approx(-0.6), pytest.approx(0.8)]]


def test_float32_embeddings_are_measured_in_float64():
    """Pairwise sums over many rows lose digits in float32; the measures are taken in float64,
    so float32 embeddings read as their float64 copy does."""
    features = np.random.default_rng(2).normal(size=(40, 8)).astype(np.float32)
    cosine, uniformity = brute_force(features.astype(np.float64))
    health = embedding_health(features)
    assert health["mean_cosine"] == pytest.approx(cosine, abs=1e-13)
    assert health["uniformity"] == pytest.approx(uniformity, abs=1e-13)


def test_effective_rank_ignores_directions_not_used():
    """Rows in 2 of 3 dimensions, equally: singular values (sqrt 2, sqrt 2, 0), rank 2."""
    unit = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert effective_rank(unit) == pytest.approx(2.0)


def test_the_sample_is_drawn_without_replacement(monkeypatch):
    """51 orthogonal rows, 50 sampled: distinct rows have cosine 0; a row drawn twice would
    pair with itself at cosine 1."""
    monkeypatch.setattr(collapse, "PAIR_SAMPLE", 50)
    health = embedding_health(np.eye(51), seed=0)
    assert health["mean_cosine"] == 0.0
    assert health["uniformity"] == pytest.approx(-4.0)
