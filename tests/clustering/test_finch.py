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


def circle(degrees: list[float]) -> np.ndarray:
    """(N, 2) float32 unit points at these angles: cosine distances are easy to read off."""
    angles = np.radians(degrees)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def test_components_equal_scipy_on_random_successor_graphs():
    """Weak components of i -> successor[i] (self-loops included) equal scipy's, numbered by
    each component's smallest member."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(0)
    for n in (1, 2, 17, 300):
        successor = rng.integers(n, size=n)
        alone = rng.random(n) < 0.2
        successor[alone] = np.flatnonzero(alone)  # self-loops, as a missed approximate search
        graph = coo_matrix((np.ones(n), (np.arange(n), successor)), shape=(n, n))
        _, expected = connected_components(graph, directed=True, connection="weak")
        found = successor_components(successor)
        assert found.dtype == np.int64
        assert same_grouping(found, expected)
        firsts = [int(np.flatnonzero(found == k)[0]) for k in range(found.max() + 1)]
        assert firsts == sorted(firsts)


def test_two_points_make_one_cluster():
    """N = 2: each is the other's first neighbour; one partition of one cluster."""
    result = finch(np.array([[1, 0], [0, 1]], np.float32))
    assert result.num_clusters == [1] and result.partitions[0].tolist() == [0, 0]
    assert result.requested is None


def test_each_level_groups_the_previous_level_by_cluster_means():
    """Points in 4 tight pairs at 0/4°, 20/24°, 180/184°, 200/204°: partition 0 is the pairs.
    Pair means link 2° <-> 22° and 182° <-> 202°: partition 1 is two clusters. Those are
    opposite: a third level would merge everything into one, which FINCH does not keep."""
    points = circle([0, 4, 20, 24, 180, 184, 200, 204])
    result = finch(points)
    assert result.num_clusters == [4, 2]
    assert result.partitions[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert result.partitions[1].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(p.dtype == np.int64 for p in result.partitions)


@pytest.mark.parametrize("target, expected", [
    (4, [0, 0, 1, 1, 2, 2, 3, 3]),  # partition 0 itself: nothing to merge
    (3, [0, 0, 0, 0, 1, 1, 2, 2]),  # the closest pair of pair means (2° and 22°) merged
    (2, [0, 0, 0, 0, 1, 1, 1, 1]),  # partition 1 itself
    (1, [0] * 8),  # partition 1's two clusters merged
])
def test_requested_count_merges_from_the_coarsest_partition_with_enough(target, expected):
    """Pairs at 0/4°, 20/24°, 180/184°, 200/204° (partitions of 4 and 2 clusters): a requested
    count is reached from the coarsest partition holding at least that many clusters, by
    merging the closest cluster means; the partitions themselves are unchanged."""
    points = circle([0, 4, 20, 24, 180, 184, 200, 204])
    result = finch(points, num_clusters=target)
    assert result.num_clusters == [4, 2]
    assert result.requested.tolist() == expected


def test_merge_to_count_takes_the_closest_means_of_raw_rows():
    """Clusters {0°}, {40°, 50°, 60°, 70°}, {100°}: means at 0°, 55° and 100° (weighted by
    rows), so the closest pair is 55° <-> 100° (45° apart, against 55°)."""
    from stages.clustering.finch import merge_to_count

    points = circle([0, 40, 50, 60, 70, 100])
    labels = np.array([7, 3, 3, 3, 3, 5])
    assert merge_to_count(points, labels, 2).tolist() == [0, 1, 1, 1, 1, 1]
    assert merge_to_count(points, labels, 3).tolist() == [0, 1, 1, 1, 1, 2]
    assert merge_to_count(points, labels, 1).tolist() == [0] * 6


@pytest.mark.parametrize("target", [0, 5, -1])
def test_requested_count_outside_one_to_the_finest_count_is_refused(target):
    """At most as many clusters as the finest partition has, at least one; the message names
    the option, the value and the limit."""
    from stages.runtime.errors import SlicError

    with pytest.raises(SlicError) as caught:
        finch(circle([0, 4, 20, 24, 180, 184, 200, 204]), num_clusters=target)
    assert str(caught.value) == (f"--num-clusters {target} must be between 1 and 4, the cluster "
                                 "count of the finest FINCH partition of this data")


def test_early_exit_ignores_links_an_approximate_search_missed(monkeypatch):
    """A point whose approximate search found nothing (distance inf, linked to itself) does
    not make every coarser link count as short: the longest link is of the finite ones."""
    import stages.clustering.finch as finch_module

    search = finch_module.first_neighbours

    def missing_last(features: np.ndarray, method: str = "exact"):
        successor, distance = search(features, method)
        if len(features) == 13:  # partition 0 only: the 13th point found nothing
            successor[-1], distance[-1] = 12, np.inf
        return successor, distance

    monkeypatch.setattr(finch_module, "first_neighbours", missing_last)
    pairs = [(0, 20), (100, 101), (104, 105), (109, 110), (200, 201), (250, 251)]
    points = circle([angle for pair in pairs for angle in pair] + [300])
    pruned = finch(points, ensure_early_exit=True)
    assert pruned.num_clusters == [7, 5]


def test_default_search_is_exact_and_the_asked_one_reaches_every_level(monkeypatch):
    """`finch` searches exactly unless told otherwise (`auto` is the CLI's choice, not this
    function's), and the method asked for is used at every level."""
    import stages.clustering.finch as finch_module

    used: list[str] = []
    search = finch_module.first_neighbours

    def spy(features: np.ndarray, method: str = "exact"):
        used.append(method)
        return search(features, method)

    monkeypatch.setattr(finch_module, "first_neighbours", spy)
    points = circle([0, 4, 20, 24, 180, 184, 200, 204])
    finch(points)
    assert len(used) >= 2 and set(used) == {"exact"}
    used.clear()
    finch(points, neighbours="ivf")
    assert len(used) >= 2 and set(used) == {"ivf"}


def test_a_level_that_merges_just_two_clusters_ends_the_partitions():
    """Pairs at 0-20°, 100-101° and 104-105°, with early exit: one level up only the two close
    pairs link (4°, under the finest partition's longest link of 20°), leaving 2 of 3
    clusters. A level that merges only two clusters is not kept, so there is one partition."""
    angles = np.radians([0, 20, 100, 101, 104, 105])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    assert finch(points, ensure_early_exit=True).num_clusters == [3]


def test_first_neighbours_search_exactly_unless_told_otherwise():
    points = blobs(4, 60, 8, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first_neighbours(points),
                                                   first_neighbours(points, "exact")))
