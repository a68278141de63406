import numpy as np
import pytest

from stages.clustering.finch import finch, successor_components
from stages.clustering.neighbours import first_neighbours


def blobs(seed: int, n: int, dim: int, centres: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    return (means[rng.integers(centres, size=n)] + 0.6 * rng.normal(size=(n, dim))).astype(
        np.float32)


def same_grouping(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two labellings group the points alike, whatever the cluster numbers."""
    pairs = set(zip(first.tolist(), second.tolist()))
    return len(pairs) == len(set(first.tolist())) == len(set(second.tolist()))


def test_components_of_a_successor_graph():
    successor = np.array([1, 0, 1, 4, 3, 3, 6])
    assert successor_components(successor).tolist() == [0, 0, 0, 1, 1, 1, 2]
    chain = np.array([1, 2, 3, 4, 5, 4])
    assert successor_components(chain).tolist() == [0] * 6


def test_first_neighbour_is_never_self_even_with_duplicates():
    points = np.array([[1, 0], [1, 0], [0, 1], [0.9, 0.1]], np.float32)
    neighbours, distances = first_neighbours(points)
    assert (neighbours != np.arange(4)).all()
    assert neighbours[0] == 1 and neighbours[1] == 0
    assert distances[0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed, n, dim, centres", [(0, 600, 16, 8), (1, 2000, 64, 30),
                                                    (2, 1500, 8, 5)])
def test_partitions_equal_the_authors_package(seed, n, dim, centres):
    from finch.finch import FINCH
    from sklearn.metrics import adjusted_rand_score

    data = blobs(seed, n, dim, centres)
    ours = finch(data)
    labels, counts, _ = FINCH(data, distance="cosine", ann_threshold=n + 1, verbose=False)
    assert ours.num_clusters == list(counts)
    for level, partition in enumerate(ours.partitions):
        assert adjusted_rand_score(labels[:, level], partition) == 1.0


def test_labels_are_canonical_and_deterministic():
    data = blobs(3, 500, 12, 6)
    first, again = finch(data), finch(data)
    for a, b in zip(first.partitions, again.partitions):
        assert np.array_equal(a, b)
        firsts = [int(np.flatnonzero(a == k)[0]) for k in range(a.max() + 1)]
        assert firsts == sorted(firsts)


@pytest.mark.parametrize("target", [3, 12, 25])
def test_requested_count_equals_the_authors_package(target):
    from finch.finch import FINCH
    from sklearn.metrics import adjusted_rand_score

    data = blobs(1, 2000, 64, 30)
    ours = finch(data, num_clusters=target)
    _, _, requested = FINCH(data, req_clust=target, distance="cosine", ann_threshold=2001,
                            verbose=False)
    assert ours.requested.max() + 1 == target
    assert adjusted_rand_score(requested, ours.requested) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_approximate_neighbours_agree_with_exact(method):
    from sklearn.metrics import adjusted_rand_score

    data = blobs(4, 6000, 32, 40)
    exact = finch(data).partitions[0]
    approximate = finch(data, neighbours=method)
    assert adjusted_rand_score(exact, approximate.partitions[0]) >= 0.95
    assert np.array_equal(approximate.partitions[0], finch(data, neighbours=method).partitions[0])


def test_early_exit_drops_coarse_links_longer_than_the_finest_partitions_longest():
    """Pairs of points on a circle (degrees); each point's first neighbour is its mate, so the
    finest partition is the 6 pairs, and its longest link is pair A's 20°. One level up, the
    pair means link 100.5-104.5-109.5 (4° and 5°), 10 -> 100.5 (90.5°) and 200.5 <-> 250.5
    (50°). Without early exit that makes 2 clusters; with it only the links under 20° stay,
    leaving 4 clusters, and the next level (all links over 20°) merges nothing."""
    pairs = [(0, 20), (100, 101), (104, 105), (109, 110), (200, 201), (250, 251)]
    angles = np.radians([angle for pair in pairs for angle in pair])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    mates = np.repeat(np.arange(6), 2)
    plain, pruned = finch(points), finch(points, ensure_early_exit=True)
    assert plain.num_clusters == [6, 2] and pruned.num_clusters == [6, 4]
    for result in (plain, pruned):
        assert same_grouping(result.partitions[0], mates)
    assert same_grouping(plain.partitions[1], np.array([0, 0, 0, 0, 1, 1])[mates])
    assert same_grouping(pruned.partitions[1], np.array([0, 1, 1, 1, 2, 3])[mates])
