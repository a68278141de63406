import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stages.retrieve import RetrieveConfig, run
from stages.runtime.errors import ArtifactError
from stages.runtime.sections import DataConfig, WorkspaceConfig
from tests.conftest import run_slic, run_slic_json

KS = (1, 5, 10, 20, 50)


def brute_force_recall(features, labels, split, k):
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    queries, gallery = np.flatnonzero(split == "test"), np.flatnonzero(split == "train")
    similarity = unit[queries] @ unit[gallery].T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return float((labels[gallery][order] == labels[queries][:, None]).any(axis=1).mean())


def test_recall_equals_a_brute_force_search(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 32))
    labels = rng.integers(0, 12, 900)
    features = (centres[labels] + rng.normal(scale=2.0, size=(900, 32))).astype(np.float32)
    split = np.where(rng.random(900) < 0.3, "test", "train")
    path = tmp_path / "features.npz"
    np.savez(path, features=features, labels=labels, split=split)
    result = run(RetrieveConfig(), DataConfig(), WorkspaceConfig(root=str(tmp_path)),
                 features=path)
    for k in KS:
        assert abs(result.recall[k] - brute_force_recall(features, labels, split, k)) <= 1e-6
    assert 0.0 < result.recall[1] < result.recall[50] <= 1.0
    assert result.warnings == [] and str(path) in result.made  # 270 queries, every class
    assert result.retrieval.parent.parent == tmp_path / "retrieval"  # the workspace's
    assert result.retrieval.parent.name.startswith("features-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npz", "retrieval"]
    np.savez(tmp_path / "bare.npz", features=features)
    with pytest.raises(ArtifactError, match="'split'"):
        run(RetrieveConfig(), DataConfig(), WorkspaceConfig(), features=tmp_path / "bare.npz")


@pytest.mark.slow
def test_retrieve_right_after_pretrain(training_workspace, tmp_path):
    source = training_workspace / "synthetic"
    target = tmp_path / "slic-work" / "synthetic"
    target.mkdir(parents=True)
    for name in ("frames.h5", "flow.h5"):
        shutil.copy(source / name, target / name)
    run_slic("pretrain", "--dataset", "synthetic", "--quiet", "--epochs", "1",
             "--set", "pretrain.arch=r3d_tiny", "--set", "pretrain.clip_length=4",
             "--set", "pretrain.crop_size=32", "--set", "pretrain.batch_size=6",
             "--set", "pretrain.workers=0", "--set", "pretrain.seed=5", cwd=tmp_path)
    summary = run_slic_json("retrieve", "--k", "1,5", "--clips", "2",
                            "--gallery", "gallery.html", cwd=tmp_path)
    assert {"r1", "r5"} <= set(summary) and "r10" not in summary
    assert summary["num_queries"] == 8 and summary["num_gallery"] == 16
    assert not summary["features_reused"]
    page = (tmp_path / "gallery.html").read_text()
    assert page.count('class="clip ') == 8 * 6
    described = run_slic_json("inspect", str(tmp_path / summary["retrieval"]))
    assert described["kind"] == "retrieval" and described["num_queries"] == 8
    features = run_slic_json("inspect", str(tmp_path / summary["features"]))
    assert features["splits"] == {"test": 8, "train": 16}
    again = run_slic_json("retrieve", "--k", "1,5", "--clips", "2", cwd=tmp_path)
    assert again["features_reused"] and again["r1"] == summary["r1"]
    other = run_slic_json("retrieve", "--k", "1,5", "--clips", "3", cwd=tmp_path)
    first, second = (Path(tmp_path / s["retrieval"]).parent for s in (summary, other))
    assert first != second and (first / "retrieval.h5").is_file()  # side by side
    newest = first.parent / "synthetic-projection"
    assert newest.is_symlink() and newest.resolve() == second.resolve()
    baseline = run_slic_json("retrieve", "--k", "1,5", "--clips", "2", "--random-init",
                             cwd=tmp_path)  # the latest run's encoder and clips, untrained
    assert "random-init" in baseline["retrieval"] and baseline["num_queries"] == 8
    assert baseline["random_init_seed"] == 5 and summary["random_init_seed"] is None
    assert baseline["random_init"].endswith("clip settings, seed 5")  # the run's seed, not 7
    source = run_slic_json("inspect", str(tmp_path / baseline["features"]))["source"]
    assert (source["clip_length"], source["crop_size"]) == (4, 32)
    bad = run_slic("retrieve", "--k", "0,x", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "retrieve.ks" in bad.stderr
    assert json.loads(json.dumps(summary["per_class"]))[0]["queries"] == 2


def test_a_gallery_path_that_is_not_a_gallery_is_refused_before_any_work(tmp_path):
    """retrieve --gallery wrote over any file (a page of the user's, a frames.h5, the best.pt
    it had just read); now only a new file or a gallery slic wrote."""
    from stages.runtime.errors import ConfigError

    rng = np.random.default_rng(0)
    path = tmp_path / "features.npz"
    np.savez(path, features=rng.normal(size=(20, 4)).astype(np.float32),
             labels=rng.integers(0, 2, 20), split=np.array(["train", "test"] * 10))
    notes = tmp_path / "notes.html"
    notes.write_text("<html>my notes</html>")
    for taken in (notes, path):
        before = taken.read_bytes()
        with pytest.raises(ConfigError, match="--gallery"):
            run(RetrieveConfig(), DataConfig(), WorkspaceConfig(root=str(tmp_path / "ws")),
                features=path, gallery=taken)
        assert taken.read_bytes() == before
    assert not (tmp_path / "ws").exists()  # refused before anything was written
