import numpy as np
import pytest
from sklearn import metrics

from stages.clustering.metrics import cluster_quality


@pytest.mark.parametrize("seed, n, classes, clusters", [(0, 300, 5, 40), (1, 1000, 15, 7),
                                                         (2, 50, 3, 3), (3, 2000, 20, 400)])
def test_scores_equal_scikit_learn(seed, n, classes, clusters):
    rng = np.random.default_rng(seed)
    truth = rng.integers(classes, size=n)
    found = np.where(rng.random(n) < 0.5, truth, rng.integers(clusters, size=n))
    quality = cluster_quality(truth, found)
    assert quality.nmi == pytest.approx(metrics.normalized_mutual_info_score(truth, found),
                                        abs=1e-9)
    assert quality.ami == pytest.approx(metrics.adjusted_mutual_info_score(truth, found),
                                        abs=1e-9)
    assert quality.ari == pytest.approx(metrics.adjusted_rand_score(truth, found), abs=1e-9)


def test_purity_and_pair_false_positives_by_hand():
    truth = np.array([0, 0, 1, 1, 1, 2])
    found = np.array([5, 5, 5, 7, 7, 9])
    quality = cluster_quality(truth, found)
    assert quality.purity == pytest.approx(5 / 6)
    # Same-cluster pairs: (0,1) (0,2) (1,2) (3,4) -> 4 pairs, 2 of them mix classes.
    assert quality.pair_false_positive_rate == pytest.approx(2 / 4)
    perfect = cluster_quality(truth, truth + 10)
    assert (perfect.nmi, perfect.ami, perfect.ari, perfect.purity) == (1.0, 1.0, 1.0, 1.0)
