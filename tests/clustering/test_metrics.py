import math

import numpy as np
import pytest
from sklearn import metrics

from stages.clustering import metrics as cluster_metrics
from stages.clustering.metrics import cluster_quality, log_factorials


def assert_equals_scikit_learn(truth: np.ndarray, found: np.ndarray) -> None:
    quality = cluster_quality(truth, found)
    assert quality.nmi == pytest.approx(metrics.normalized_mutual_info_score(truth, found),
                                        abs=1e-9)
    assert quality.ami == pytest.approx(metrics.adjusted_mutual_info_score(truth, found),
                                        abs=1e-9)
    assert quality.ari == pytest.approx(metrics.adjusted_rand_score(truth, found), abs=1e-9)
    table = metrics.cluster.contingency_matrix(truth, found)
    assert quality.purity == pytest.approx(table.max(0).sum() / len(truth), abs=1e-12)


@pytest.mark.parametrize("seed, n, classes, clusters", [(0, 300, 5, 40), (1, 1000, 15, 7),
                                                         (2, 50, 3, 3), (3, 2000, 20, 400)])
def test_scores_equal_scikit_learn(seed, n, classes, clusters):
    rng = np.random.default_rng(seed)
    truth = rng.integers(classes, size=n)
    found = np.where(rng.random(n) < 0.5, truth, rng.integers(clusters, size=n))
    assert_equals_scikit_learn(truth, found)


def imbalanced(seed: int, n: int, classes: int, singletons: float) -> tuple[np.ndarray, ...]:
    """Zipf-sized classes; clusters: a share of singletons, the rest a few big noisy ones."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, classes + 1)
    truth = rng.choice(classes, size=n, p=weights / weights.sum())
    found = np.where(rng.random(n) < 0.7, truth, rng.integers(classes // 3 + 1, size=n))
    alone = rng.random(n) < singletons
    found[alone] = found.max() + 1 + np.arange(alone.sum())
    return truth, found


@pytest.mark.parametrize("seed, n, classes, singletons", [(4, 5000, 200, 0.3),
                                                          (5, 3000, 50, 0.9),
                                                          (6, 4000, 7, 0.05)])
def test_imbalanced_and_singleton_clusters_equal_scikit_learn(seed, n, classes, singletons):
    assert_equals_scikit_learn(*imbalanced(seed, n, classes, singletons))


def test_expected_mutual_information_in_small_chunks(monkeypatch):
    """Chunk boundaries (inside and between pairs of sizes) change nothing."""
    truth, found = imbalanced(7, 3000, 40, 0.4)
    whole = cluster_quality(truth, found).ami
    for chunk in (1, 7, 1000):
        monkeypatch.setattr(cluster_metrics, "EMI_CHUNK", chunk)
        assert cluster_quality(truth, found).ami == pytest.approx(whole, abs=1e-12)


def test_tails_left_out_change_nothing(monkeypatch):
    """The n_ij beyond the Bernstein bound's reach add nothing a float64 sum can hold."""
    truth, found = imbalanced(10, 20_000, 30, 0.2)
    truncated = cluster_quality(truth, found).ami
    monkeypatch.setattr(cluster_metrics, "EMI_TAIL", 1e12)
    assert cluster_quality(truth, found).ami == pytest.approx(truncated, abs=1e-15)


def test_many_clusters_equal_scikit_learn():
    rng = np.random.default_rng(8)
    truth = rng.integers(200, size=20_000)
    found = np.where(rng.random(20_000) < 0.6, truth * 50 + rng.integers(50, size=20_000),
                     rng.integers(10_000, size=20_000))
    assert_equals_scikit_learn(truth, found)


@pytest.mark.parametrize("case", ["one class", "one cluster", "one of each", "all singletons",
                                  "singletons, several classes"])
def test_edge_cases_equal_scikit_learn(case):
    rng = np.random.default_rng(9)
    many = rng.integers(6, size=60)
    truth, found = {"one class": (np.zeros(60, int), many),
                    "one cluster": (many, np.zeros(60, int)),
                    "one of each": (np.full(60, 3), np.full(60, 8)),
                    "all singletons": (np.arange(60), np.arange(60)[::-1]),
                    "singletons, several classes": (many, np.arange(60))}[case]
    quality = cluster_quality(truth, found)
    if case == "all singletons":
        # scikit-learn's AMI is 0/0 here (every labelling is this one); identical partitions.
        assert (quality.nmi, quality.ami, quality.ari) == pytest.approx((1.0, 1.0, 1.0))
    else:
        assert_equals_scikit_learn(truth, found)


def test_log_factorials_equal_lgamma():
    for n in (0, 1, 63, 64, 65, 20_000):
        table = log_factorials(n)
        exact = np.array([math.lgamma(k + 1) for k in range(n + 1)])
        assert table.shape == (n + 1,)
        np.testing.assert_allclose(table, exact, rtol=4e-15, atol=1e-14)


def test_purity_and_pair_false_positives_by_hand():
    truth = np.array([0, 0, 1, 1, 1, 2])
    found = np.array([5, 5, 5, 7, 7, 9])
    quality = cluster_quality(truth, found)
    assert quality.purity == pytest.approx(5 / 6)
    # Same-cluster pairs: (0,1) (0,2) (1,2) (3,4) -> 4 pairs, 2 of them mix classes.
    assert quality.pair_false_positive_rate == pytest.approx(2 / 4)
    perfect = cluster_quality(truth, truth + 10)
    assert (perfect.nmi, perfect.ami, perfect.ari, perfect.purity) == (1.0, 1.0, 1.0, 1.0)
