"""Spherical k-means: cosine clusters of unit rows, canonical labels, the input untouched."""

import numpy as np
import pytest

from stages.clustering.kmeans import spherical_kmeans
from stages.runtime.errors import SlicError


def unstructured(seed: int, n: int, dim: int) -> np.ndarray:
    """Gaussian rows with no cluster structure: k-means' answer depends on its seed and its
    iterations, and cosine and Euclidean assignments disagree for some rows."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) * rng.uniform(0.2, 3.0, size=(n, 1))).astype(np.float32)


def assert_spherical_fixed_point(features: np.ndarray, labels: np.ndarray) -> None:
    """Converged spherical k-means: every row's cluster is the one whose normalised mean of
    unit rows is the most cosine-similar to it (checked in float64, up to near ties)."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    means = np.stack([unit[labels == k].mean(axis=0) for k in range(labels.max() + 1)])
    cosine = unit @ (means / np.linalg.norm(means, axis=1, keepdims=True)).T
    own = cosine[np.arange(len(unit)), labels]
    assert (own >= cosine.max(axis=1) - 1e-5).all()


def test_converges_to_cosine_assignments() -> None:
    """The labels are a fixed point of k-means under cosine similarity (not Euclidean
    distance to unnormalised means), numbered canonically."""
    features = unstructured(0, 240, 3)
    labels = spherical_kmeans(features, 6, iterations=60)
    assert labels.dtype == np.int64 and labels.shape == (240,)
    assert sorted(set(labels.tolist())) == list(range(6))
    firsts = [int(np.flatnonzero(labels == k)[0]) for k in range(6)]
    assert firsts == sorted(firsts)
    assert_spherical_fixed_point(features, labels)


def test_separated_directions_are_found_whatever_the_norms() -> None:
    """Three directions, rows of very different lengths: the clusters are the directions."""
    rng = np.random.default_rng(1)
    truth = rng.integers(3, size=90)
    features = (np.eye(3, 5)[truth] + 0.02 * rng.normal(size=(90, 5))) * rng.uniform(
        0.01, 100, size=(90, 1))
    labels = spherical_kmeans(features.astype(np.float32), 3)
    first_of = {c: int(np.flatnonzero(truth == c)[0]) for c in range(3)}
    order = sorted(first_of, key=first_of.get)
    expected = np.argsort(order)[truth]  # classes renumbered by their first member
    assert labels.tolist() == expected.tolist()


def test_float64_and_fortran_ordered_features_are_accepted_and_left_unchanged() -> None:
    """faiss needs C-ordered float32: the features are converted into a copy, so the caller's
    array (float32 too) is never normalised in place."""
    features = unstructured(2, 120, 4)
    expected = spherical_kmeans(features, 4)
    for variant in (features.astype(np.float64), np.asfortranarray(features)):
        assert np.array_equal(spherical_kmeans(variant, 4), expected)
    before = features.copy()
    spherical_kmeans(features, 4)
    assert np.array_equal(features, before)


def test_defaults_are_seed_0_and_25_iterations_and_both_are_used() -> None:
    """The documented defaults, and both reach faiss: another seed or a single iteration
    changes the answer on unstructured data."""
    features = unstructured(1, 800, 6)  # still moving after 25 iterations
    default = spherical_kmeans(features, 25)
    assert np.array_equal(default, spherical_kmeans(features, 25, seed=0, iterations=25))
    assert not np.array_equal(default, spherical_kmeans(features, 25, seed=1))
    assert not np.array_equal(default, spherical_kmeans(features, 25, iterations=1))
    assert not np.array_equal(default, spherical_kmeans(features, 25, iterations=26))


def test_many_points_per_cluster_are_all_used_for_training() -> None:
    """More than 256 points per cluster: faiss must not train on a subsample (a subsample
    starts from other centroids and ends elsewhere on unstructured data). Reference: faiss's
    own spherical k-means with no cap on the points per centroid, on the unit rows."""
    import faiss

    from stages.clustering.finch import canonical_labels

    features = unstructured(0, 900, 3)
    labels = spherical_kmeans(features, 3)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    reference = faiss.Kmeans(3, 3, niter=25, seed=0, spherical=True,
                             max_points_per_centroid=10**9)
    reference.train(unit)
    assigned = reference.index.search(unit, 1)[1][:, 0].astype(np.int64)
    assert np.array_equal(labels, canonical_labels(assigned))
    assert_spherical_fixed_point(features, spherical_kmeans(features, 2, iterations=80))


def test_one_cluster_and_one_cluster_per_point_are_allowed() -> None:
    """K = 1 puts everything in cluster 0; K = N gives every point its own cluster."""
    features = unstructured(5, 12, 3)
    assert spherical_kmeans(features, 1).tolist() == [0] * 12
    assert spherical_kmeans(features, 12).tolist() == list(range(12))


@pytest.mark.parametrize("count", [0, 13, -2])
def test_a_count_outside_one_to_n_is_refused(count: int) -> None:
    """K must lie in 1..N; the message names the option, the value and the limit."""
    with pytest.raises(SlicError) as caught:
        spherical_kmeans(unstructured(6, 12, 3), count)
    assert str(caught.value) == (f"--num-clusters {count} must be between 1 and the number of "
                                 "videos (12)")


def test_nothing_is_printed(capfd: pytest.CaptureFixture[str]) -> None:
    """A library function reports nothing on stdout (the CLI owns the terminal)."""
    spherical_kmeans(unstructured(7, 100, 3), 3)
    out, _ = capfd.readouterr()
    assert out == ""
