"""Collapse measures against their definitions, and the warning they raise."""

import numpy as np
import pytest

from stages.evaluation import collapse
from stages.evaluation.collapse import collapse_warning, embedding_health


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
