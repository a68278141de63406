import json

import numpy as np
import pytest

from stages.cluster import ClusterConfig, run
from stages.io.artifacts import (
    KIND_FEATURES,
    Provenance,
    StoredFeatures,
    open_artifact,
    read_assignments,
    write_artifact,
    write_features,
    write_provenance,
)
from stages.runtime.context import RunContext
from stages.runtime.errors import SlicError
from tests.clustering.test_finch import blobs
from tests.conftest import run_slic


def write_npz(path, n=400, **arrays):
    data = blobs(7, n, 16, 6)
    rng = np.random.default_rng(0)
    defaults = {"features": data, "labels": rng.integers(6, size=n),
                "split": np.where(np.arange(n) % 4 == 0, "test", "train"),
                "video_ids": np.array([f"v{i}" for i in range(n)])}
    np.savez(path, **{**defaults, **arrays})
    return path


def test_cluster_writes_every_partition_and_scores(tmp_path):
    features = write_npz(tmp_path / "f.npz")
    result = run(ClusterConfig(partition="coarsest", split="train"), features)
    assert result.output == tmp_path / "f.assignments.h5" and result.num_videos == 300
    with open_artifact(result.output, "assignments") as h5:
        stored = read_assignments(h5)
    assert stored.partitions.shape == (len(result.num_clusters), 300)
    assert list(stored.partitions.max(axis=1) + 1) == result.num_clusters
    assert stored.chosen_from == f"partition {len(result.num_clusters) - 1}"
    assert np.array_equal(stored.chosen, stored.partitions[-1])
    assert stored.video_ids[0] == "v1"
    assert set(result.quality[0]) == {"nmi", "ami", "ari", "purity", "pair_false_positive_rate"}
    assert result.made == "finch on the train rows of f.npz"


def test_the_partitions_say_which_clips_their_features_came_from(tmp_path):
    """slic's features.h5 names its clips a video: the NMI table says what it measured."""
    rng = np.random.default_rng(0)
    stored = StoredFeatures(blobs(7, 60, 8, 3).astype(np.float32),
                            np.array([f"v{i}" for i in range(60)], dtype=object),
                            rng.integers(3, size=60), np.array(["train"] * 60, dtype=object),
                            ["a", "b", "c"], "projection", {"clips": 5, "feature": "projection"})
    path = tmp_path / "features.h5"
    with write_artifact(path, KIND_FEATURES, "features") as h5:
        write_features(h5, stored)
        write_provenance(h5, Provenance("slic retrieve", {}, "0", [], "a", "b"))
    result = run(ClusterConfig(split="train"), path)
    assert result.made == "finch on the train rows of features.h5 (5 clips a video, projection)"
    assert run(ClusterConfig(split="train"), path).made == result.made  # up to date: the same


def test_cluster_is_up_to_date_for_the_same_features_and_settings(tmp_path):
    features = write_npz(tmp_path / "f.npz")
    first = run(ClusterConfig(), features)
    written = first.output.stat().st_mtime_ns
    again = run(ClusterConfig(), features)
    assert again.status == "up to date" and first.status == "written"
    assert first.output.stat().st_mtime_ns == written
    assert (again.num_clusters, again.quality) == (first.num_clusters, first.quality)
    assert run(ClusterConfig(), features, context=RunContext(force=True)).status == "written"
    assert run(ClusterConfig(partition="coarsest"), features).status == "written"


BAD_FEATURES = pytest.mark.parametrize(
    "arrays, message",
    [
        ({"features": np.full((5, 3), np.nan, np.float32)}, "hold NaN or Inf"),
        ({"features": np.zeros((5, 0), np.float32)}, "D >= 1"),
        ({"features": np.ones((1, 4), np.float32)}, "at least 2"),
        ({"labels": np.zeros(3)}, "'labels' has 3 entries"),
        ({"features": np.array([["a", "b"]] * 5)}, "'features' must hold numbers"),
        ({"labels": np.array(["run"] * 400)}, "'labels' must hold integer class indices"),
    ],
)


@BAD_FEATURES
def test_bad_feature_files_are_refused(tmp_path, arrays, message):
    features = write_npz(tmp_path / "f.npz", **arrays)
    with pytest.raises(SlicError, match=message):
        run(ClusterConfig(), features)


@pytest.mark.slow
@BAD_FEATURES
def test_bad_feature_files_fail_with_one_line(tmp_path, arrays, message):
    features = write_npz(tmp_path / "f.npz", **arrays)
    process = run_slic("cluster", "--features", str(features), check=False)
    assert process.returncode == 2 and len(process.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip"])
def test_empty_or_broken_npz_is_one_line(tmp_path, content):
    features = tmp_path / "f.npz"
    features.write_bytes(content)
    process = run_slic("cluster", "--features", str(features), check=False)
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip().startswith("error:") and "cannot be read as .npz" in \
        process.stderr and "Traceback" not in process.stderr


def test_a_split_that_matches_no_rows_names_the_values_there(tmp_path):
    features = write_npz(tmp_path / "f.npz", split=np.array(["val"] * 400))
    with pytest.raises(SlicError, match="--split train leaves 0 rows.*split values: val"):
        run(ClusterConfig(split="train"), features)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    features = tmp_path / "f.npz"
    np.savez(features, features=np.array([object()] * 4, dtype=object))
    with pytest.raises(SlicError, match="cannot be read as .npz of plain arrays"):
        run(ClusterConfig(split="all"), features)


@pytest.mark.slow
def test_cli_json_and_inspect(tmp_path):
    features = write_npz(tmp_path / "f.npz")
    summary = json.loads(run_slic("cluster", "--features", str(features), "--json").stdout)
    assert summary["num_videos"] == 400 and summary["chosen_from"] == "partition 0"
    info = json.loads(run_slic("inspect", str(tmp_path / "f.assignments.h5"), "--json").stdout)
    assert info["kind"] == "assignments" and info["num_classes"] == 6
    assert info["num_clusters"] == summary["num_clusters"]
    bad = run_slic("cluster", "--features", str(features), "--partition", "99", check=False)
    assert bad.returncode == 2 and "cluster.partition" in bad.stderr
    before = features.read_bytes()
    onto_input = run_slic("cluster", "--features", str(features), "--out", str(features),
                          check=False)
    assert onto_input.returncode == 2 and "also this stage's input" in onto_input.stderr
    assert features.read_bytes() == before


def test_num_clusters_gives_exactly_that_many(tmp_path):
    features = write_npz(tmp_path / "f.npz")
    result = run(ClusterConfig(num_clusters=9), features)
    assert (result.num_chosen, result.chosen_from) == (9, "num_clusters 9")
    with pytest.raises(SlicError, match="must be between 1 and"):
        run(ClusterConfig(num_clusters=10_000), features)


def test_kmeans_is_seeded_and_needs_a_count(tmp_path):
    features = write_npz(tmp_path / "f.npz")
    first = run(ClusterConfig(method="kmeans", num_clusters=6, seed=1), features,
                out=tmp_path / "a.h5")
    again = run(ClusterConfig(method="kmeans", num_clusters=6, seed=1), features,
                out=tmp_path / "b.h5")
    with open_artifact(first.output) as a, open_artifact(again.output) as b:
        assert np.array_equal(read_assignments(a).chosen, read_assignments(b).chosen)
        assert read_assignments(a).method == "kmeans"
    assert first.num_clusters == [6] and first.quality[0]["nmi"] > 0
    with pytest.raises(SlicError, match="needs --num-clusters"):
        run(ClusterConfig(method="kmeans"), features)
