"""From features to pseudo-labels: which partition a stage gets, and what it is told on errors."""

import numpy as np
import pytest

from stages.clustering.finch import finch
from stages.clustering.partitions import choose_partition, cluster_features
from stages.runtime.errors import ConfigError, SlicError
from tests.clustering.test_finch import blobs


@pytest.mark.parametrize("choice, count, index", [("finest", 4, 0), ("coarsest", 4, 3),
                                                  ("coarsest", 1, 0), ("0", 3, 0), ("2", 3, 2)])
def test_choose_partition_by_name_or_index(choice: str, count: int, index: int) -> None:
    """`finest` is the first partition, `coarsest` the last, a digit string that index."""
    assert choose_partition(choice, count) == index


@pytest.mark.parametrize("choice", ["3", "-1", "7", "middle", "", "1.5"])
def test_choose_partition_refuses_what_names_no_partition(choice: str) -> None:
    """An index outside 0..count-1 (negative too) or another word is a config error naming the
    key, the value, the choices and the partition count."""
    with pytest.raises(ConfigError) as caught:
        choose_partition(choice, 3, "pretrain.partition")
    message = str(caught.value)
    assert message.startswith(f"pretrain.partition {choice!r} must be finest, coarsest")
    assert "index in 0..2 (this clustering has 3 partitions)" in message


def test_choose_partition_names_cluster_partition_by_default() -> None:
    """Without a key, the message names the `slic cluster` option."""
    with pytest.raises(ConfigError, match=r"^cluster\.partition 'x' must"):
        choose_partition("x", 2)


def test_finch_clustering_keeps_every_partition_and_picks_the_asked_one() -> None:
    """Every FINCH partition is kept (P, N); `chosen` is the partition asked for, by name or
    index, and `chosen_from` says which."""
    data = blobs(0, 300, 8, 6)
    expected = finch(data)
    assert len(expected.partitions) >= 3  # finest, a middle one and coarsest differ
    for partition, level in [("finest", 0), ("1", 1),
                             ("coarsest", len(expected.partitions) - 1)]:
        found = cluster_features(data, "finch", partition, nn="exact")
        assert np.array_equal(found.partitions, np.stack(expected.partitions))
        assert found.num_clusters == expected.num_clusters
        assert np.array_equal(found.chosen, expected.partitions[level])
        assert found.chosen_from == f"partition {level}"


def test_finch_defaults_are_the_finest_partition_without_early_exit() -> None:
    """By default: the finest partition of plain FINCH (no pruning), exact neighbours."""
    pairs = [(0, 20), (100, 101), (104, 105), (109, 110), (200, 201), (250, 251)]
    angles = np.radians([angle for pair in pairs for angle in pair])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    found = cluster_features(points, "finch")
    assert found.num_clusters == [6, 2]  # with early exit it would be [6, 4]
    assert found.chosen_from == "partition 0"
    assert np.array_equal(found.chosen, found.partitions[0])
    pruned = cluster_features(points, "finch", ensure_early_exit=True)
    assert pruned.num_clusters == [6, 4]


def test_finch_with_a_cluster_count_returns_exactly_that_many() -> None:
    """`num_clusters` wins over `partition`: the labels are FINCH's merge to that count."""
    data = blobs(1, 300, 8, 6)
    found = cluster_features(data, "finch", "coarsest", num_clusters=4, nn="exact")
    assert np.array_equal(found.chosen, finch(data, num_clusters=4).requested)
    assert found.chosen.max() + 1 == 4
    assert found.chosen_from == "num_clusters 4"
    assert found.num_clusters == finch(data).num_clusters


def test_finch_partition_error_names_the_section() -> None:
    """A bad partition is reported under the caller's config section."""
    with pytest.raises(ConfigError, match=r"^pretrain\.partition 'nine' must"):
        cluster_features(blobs(2, 60, 4, 3), "finch", "nine", section="pretrain")


def test_kmeans_clustering_is_one_partition_of_k_clusters() -> None:
    """k-means gives a single (1, N) partition with K clusters, the one chosen; the seed
    reaches k-means."""
    rng = np.random.default_rng(5)
    data = rng.normal(size=(200, 6)).astype(np.float32)  # no structure: the seed matters
    found = cluster_features(data, "kmeans", num_clusters=5, seed=3)
    assert found.partitions.shape == (1, 200)
    assert found.num_clusters == [5]
    assert np.array_equal(found.chosen, found.partitions[0])
    assert found.chosen_from == "partition 0"
    from stages.clustering.kmeans import spherical_kmeans

    assert np.array_equal(found.chosen, spherical_kmeans(data, 5, seed=3))
    others = [cluster_features(data, "kmeans", num_clusters=5, seed=seed).chosen
              for seed in (0, 1)]
    assert any(not np.array_equal(found.chosen, other) for other in others)


def test_kmeans_needs_a_cluster_count() -> None:
    """k-means without K is a config error naming the option and the section's key."""
    with pytest.raises(ConfigError) as caught:
        cluster_features(blobs(2, 60, 4, 3), "kmeans", section="pretrain")
    assert str(caught.value) == "k-means needs --num-clusters K (pretrain.num_clusters)"
    with pytest.raises(SlicError, match=r"\(cluster\.num_clusters\)"):
        cluster_features(blobs(2, 60, 4, 3), "kmeans")


def test_finch_neighbour_search_is_auto_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """`nn` reaches every first-neighbour search of FINCH; its default is `auto` (exact up to
    50,000 points, HNSW above), not a fixed method."""
    import stages.clustering.finch as finch_module

    used: list[str] = []
    search = finch_module.first_neighbours

    def spy(features: np.ndarray, method: str = "exact") -> tuple[np.ndarray, np.ndarray]:
        used.append(method)
        return search(features, method)

    monkeypatch.setattr(finch_module, "first_neighbours", spy)
    data = blobs(3, 120, 4, 4)
    cluster_features(data, "finch")
    assert used and set(used) == {"auto"}
    used.clear()
    cluster_features(data, "finch", nn="hnsw")
    assert used and set(used) == {"hnsw"}


def test_defaults_name_the_cluster_section_and_seed_0() -> None:
    """Without `section`, errors name `cluster.*`; k-means' default seed is 0."""
    with pytest.raises(ConfigError, match=r"^cluster\.partition 'nine' must"):
        cluster_features(blobs(2, 60, 4, 3), "finch", "nine")
    data = np.random.default_rng(6).normal(size=(200, 6)).astype(np.float32)
    default = cluster_features(data, "kmeans", num_clusters=5).chosen
    assert np.array_equal(default, cluster_features(data, "kmeans", num_clusters=5, seed=0).chosen)
    assert not np.array_equal(default,
                              cluster_features(data, "kmeans", num_clusters=5, seed=1).chosen)


@pytest.mark.parametrize("choice", ["--1", "-+1", "²", "-1", "1.0", " 1"])
def test_a_malformed_partition_index_is_one_line(choice):
    """Anything but finest, coarsest or a plain index in range is the CLI's one-line error,
    never a bare ValueError from int() ("--1".lstrip("-") is a digit; "²" says isdigit())."""
    with pytest.raises(ConfigError, match="must be finest, coarsest or an index in 0..2"):
        choose_partition(choice, 3)
