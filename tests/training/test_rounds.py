"""Pretraining's clustering rounds: pseudo-labels from features, and their quality record."""

import numpy as np
import pytest

from stages.runtime.errors import ConfigError
from stages.training.rounds import clustering_round, fixed_labels, labels_digest


def separated_blobs(seed: int, per_class: int = 12, classes: int = 3, dim: int = 8
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(N, dim) float32 features in `classes` tight, far-apart groups, and their (N,) classes,
    shuffled so that no class sits in a block of rows."""
    rng = np.random.default_rng(seed)
    centres = 10.0 * np.eye(classes, dim)
    labels = rng.permutation(np.repeat(np.arange(classes), per_class))
    features = centres[labels] + 0.1 * rng.normal(size=(len(labels), dim))
    return features.astype(np.float32), labels.astype(np.int64)


def round_of(features, labels, method="kmeans", num_clusters=3, seed=0, shift=False,
             partition="finest"):
    ids = np.array([f"v{i}" for i in range(len(features))], dtype=object)
    return clustering_round(4, features, labels, ids, method, partition, num_clusters, "exact",
                            seed, shift)


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    """True when two labellings group the items alike, whatever the cluster numbers."""
    pairs = set(zip(first.tolist(), second.tolist()))
    return len(pairs) == len(set(first.tolist())) == len(set(second.tolist()))


def test_digest_is_of_the_values_not_their_dtype():
    labels = np.array([3, 1, 1, 0])
    digest = labels_digest(labels)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert labels_digest(labels.astype(np.int32)) == digest
    assert labels_digest(labels.tolist()) == digest
    assert labels_digest(labels[::-1]) != digest
    assert labels_digest(np.array([3, 1, 1, 1])) != digest


def test_fixed_labels_are_instances_or_the_true_classes():
    truth = np.array([2, 0, 2, 1], dtype=np.int32)
    none = fixed_labels("none", truth)
    assert none.tolist() == [0, 1, 2, 3] and none.dtype == np.int64
    supervised = fixed_labels("labels", truth)
    assert supervised.tolist() == [2, 0, 2, 1] and supervised.dtype == np.int64


def test_kmeans_round_recovers_separated_classes_and_records_them():
    features, truth = separated_blobs(0)
    found = round_of(features, truth)
    assert found.epoch == 4
    assert found.labels.shape == (36,) and found.labels.dtype == np.int64
    assert same_partition(found.labels, truth)
    assert found.metrics["num_clusters"] == 3
    assert found.metrics["nmi"] == pytest.approx(1.0) and found.metrics["ami"] == pytest.approx(1.0)
    assert found.metrics["cluster_fp_rate"] == 0.0
    assert found.metrics["cluster_seconds"] >= 0 and found.metrics["quality_seconds"] >= 0
    stored = found.assignments
    assert stored.partitions.shape == (1, 36) and np.array_equal(stored.chosen, found.labels)
    assert list(stored.video_ids[:2]) == ["v0", "v1"] and np.array_equal(stored.labels, truth)
    assert stored.method == "kmeans" and len(stored.quality) == 2  # the partition, the chosen


def test_the_same_seed_gives_the_same_labels_and_the_seed_is_used():
    features, truth = separated_blobs(1, per_class=20, classes=4)
    noisy = features + np.random.default_rng(9).normal(scale=4.0, size=features.shape).astype(
        np.float32)  # overlapping groups: the seed could matter
    first = round_of(noisy, truth, num_clusters=6, seed=3)
    again = round_of(noisy, truth, num_clusters=6, seed=3)
    assert np.array_equal(first.labels, again.labels)
    assert labels_digest(first.labels) == labels_digest(again.labels)
    others = [round_of(noisy, truth, num_clusters=6, seed=seed).labels for seed in (0, 1, 2)]
    assert not all(same_partition(first.labels, other) for other in others)  # the seed is used


def test_finch_round_keeps_every_partition_and_chooses_one():
    features, truth = separated_blobs(2, per_class=15)
    finest = round_of(features, truth, method="finch", num_clusters=None)
    coarsest = round_of(features, truth, method="finch", num_clusters=None,
                        partition="coarsest")
    partitions = finest.assignments.partitions
    assert partitions.shape[1] == 45 and len(partitions) >= 1
    assert np.array_equal(finest.labels, partitions[0])
    assert np.array_equal(coarsest.labels, partitions[-1])
    assert finest.metrics["num_clusters"] == int(partitions[0].max()) + 1
    assert len(finest.assignments.quality) == len(partitions) + 1
    # FINCH's partitions nest: every cluster of the finest lies in one of the coarsest.
    assert same_partition(partitions[0], partitions[0] * 1000 + partitions[-1])
    with pytest.raises(ConfigError, match="pretrain.partition"):
        round_of(features, truth, method="finch", num_clusters=None, partition="99")


def test_official_shift_gives_each_video_the_label_of_the_one_before():
    features, truth = separated_blobs(3)
    plain = round_of(features, truth)
    shifted = round_of(features, truth, shift=True)
    assert shifted.labels.tolist() == [plain.labels[-1], *plain.labels[:-1]]
    assert np.array_equal(shifted.assignments.chosen, shifted.labels)
    assert shifted.metrics["nmi"] < plain.metrics["nmi"]  # the shift costs quality


def test_unknown_true_labels_skip_the_quality():
    features, truth = separated_blobs(4)
    truth[5] = -1
    found = round_of(features, truth)
    assert found.assignments.quality == []
    assert "nmi" not in found.metrics and "cluster_fp_rate" not in found.metrics
    assert found.metrics["num_clusters"] == 3 and same_partition(
        np.delete(found.labels, 5), np.delete(truth, 5))
