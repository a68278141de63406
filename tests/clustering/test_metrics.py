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


def brute_force_emi(rows: list[int], cols: list[int], tail: float | None = None) -> float:
    """E[MI] by its definition, a loop over every class, cluster and n_ij with exact
    hypergeometric probabilities (math.comb). With `tail`, only the n_ij within the
    Bernstein reach t of the mean (t^2 = 2 tail (mean + t / 3)) are summed."""
    n = sum(rows)
    total = 0.0
    for a in rows:
        for b in cols:
            low, high = max(1, a + b - n), min(a, b)
            if tail is not None:
                mean = a * b / n
                reach = tail / 3 + math.sqrt(tail**2 / 9 + 2 * tail * mean)
                low, high = max(low, math.ceil(mean - reach)), min(high, math.floor(mean + reach))
            for nij in range(low, high + 1):
                probability = math.comb(b, nij) * math.comb(n - b, a - nij) / math.comb(n, a)
                total += nij / n * math.log(n * nij / (a * b)) * probability
    return total


def test_expected_mutual_information_equals_its_definition_in_one_term_chunks(monkeypatch):
    """Every pair of sizes has more terms than a chunk holds (sizes >= 3, chunks of one
    term): each pair is still summed once, from its first term to its last."""
    rows, cols = [3, 5, 7, 9], [4, 4, 6, 10]
    whole = cluster_metrics._expected_mutual_information(np.array(rows), np.array(cols), 24)
    assert whole == pytest.approx(brute_force_emi(rows, cols), rel=1e-12)
    for chunk in (1, 2, 5):
        monkeypatch.setattr(cluster_metrics, "EMI_CHUNK", chunk)
        found = cluster_metrics._expected_mutual_information(np.array(rows), np.array(cols), 24)
        assert found == pytest.approx(whole, rel=1e-12)


@pytest.mark.parametrize("tail", [0.7, 1.5, 4.0, 6.0])
def test_tail_truncation_follows_the_bernstein_reach(monkeypatch, tail):
    """With a small EMI_TAIL the left-out tails are large, so the sum shows exactly which n_ij
    are kept: those within the documented Bernstein reach of the mean, and no others."""
    rng = np.random.default_rng(11)
    rows = rng.integers(1, 40, size=9).tolist()
    cols = rng.integers(1, 30, size=(sum(rows) // 15)).tolist()
    cols[-1] += sum(rows) - sum(cols)
    assert min(cols) >= 1
    monkeypatch.setattr(cluster_metrics, "EMI_TAIL", tail)
    found = cluster_metrics._expected_mutual_information(np.array(rows), np.array(cols),
                                                         sum(rows))
    truncated = brute_force_emi(rows, cols, tail)
    assert found == pytest.approx(truncated, rel=1e-11)
    assert abs(truncated - brute_force_emi(rows, cols)) > 1e-5 * truncated  # tails matter


def test_a_dominant_class_and_cluster_equal_scikit_learn():
    """A class and a cluster covering most videos: n_ij cannot be below a + b - n there
    (those cells would leave negative counts elsewhere)."""
    truth = np.array([0] * 17 + [1, 2, 3])
    found = np.array([0] * 16 + [1, 2, 3, 4])
    assert_equals_scikit_learn(truth, found)
    assert_equals_scikit_learn(found, truth)


def test_expected_mutual_information_memory_is_bounded_by_the_chunk(monkeypatch):
    """About 300,000 terms evaluated EMI_CHUNK (4096) at a time: the peak of the allocations
    stays near the per-pair arrays (10,000 pairs), far below the 16 MB that evaluating all
    terms at once takes."""
    import tracemalloc

    sizes = np.arange(1, 101)
    monkeypatch.setattr(cluster_metrics, "EMI_CHUNK", 1 << 12)
    tracemalloc.start()
    try:
        value = cluster_metrics._expected_mutual_information(sizes, sizes, int(sizes.sum()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4e6
    assert value > 0


@pytest.mark.parametrize("seed", [14, 42, 47, 57])
def test_a_single_cluster_or_class_has_ami_exactly_zero(seed):
    """One cluster (or one class) carries no information: AMI is 0.0 exactly, as scikit-learn
    gives, not a rounding residue of MI - E[MI] (these seeds make E[MI] not exactly 0)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    labels = rng.integers(int(rng.integers(2, 9)), size=n)
    one = np.zeros(n, dtype=int)
    for truth, found in ((labels, one), (one, labels)):
        assert cluster_quality(truth, found).ami == 0.0
        assert metrics.adjusted_mutual_info_score(truth, found) == 0.0


@pytest.mark.parametrize("classes, clusters", [(2, 5), (5, 2), (2, 2)])
def test_two_classes_or_two_clusters_equal_scikit_learn(classes, clusters):
    """Two groups on one side are an ordinary case, not the one-group special case."""
    rng = np.random.default_rng(13)
    truth = rng.integers(classes, size=80)
    found = np.where(rng.random(80) < 0.6, truth % clusters, rng.integers(clusters, size=80))
    assert_equals_scikit_learn(truth, found)
    assert cluster_quality(truth, found).ami > 0.05


def test_singleton_clusters_have_no_false_positive_pairs():
    """No two videos share a cluster: no pair can mix classes, the rate is 0, and purity 1."""
    truth = np.array([0, 0, 1, 1, 2])
    quality = cluster_quality(truth, np.arange(5))
    assert quality.pair_false_positive_rate == 0.0
    assert quality.purity == 1.0


def test_contingency_cells_by_hand():
    """Non-empty cells ordered by cluster then class (indices of the sorted distinct values),
    int64 counts, and the class and cluster sizes."""
    truth = np.array(["b", "a", "b", "c", "a", "b"])
    found = np.array([9, 4, 9, 4, 9, 9])
    table = cluster_metrics.contingency(truth, found)
    # clusters: 4 -> 0, 9 -> 1; classes: a -> 0, b -> 1, c -> 2
    assert table.clusters.tolist() == [0, 0, 1, 1]
    assert table.classes.tolist() == [0, 2, 0, 1]
    assert table.counts.tolist() == [1, 1, 1, 3] and table.counts.dtype == np.int64
    assert table.rows.tolist() == [2, 3, 1] and table.cols.tolist() == [2, 4]
