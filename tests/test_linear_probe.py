import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stages.evaluation.classification import confusion_matrix, top_k_accuracy
from stages.io.checkpoint import load_checkpoint
from stages.linear_probe import LinearProbeConfig, train_linear_classifier
from tests.conftest import TINY_PRETRAIN, copy_run, run_slic, run_slic_json

TINY = [*(f"--set=pretrain.{key}={value}" for key, value in TINY_PRETRAIN.items()),
        "--set=linear_probe.workers=0", "--set=linear_probe.train_clips=2"]


def test_classifier_separates_separable_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(5, 16))
    labels = rng.integers(0, 5, 400)
    features = (centres[labels] + rng.normal(size=(400, 16))).astype(np.float32)
    classifier = train_linear_classifier(features, labels, 5,
                                         LinearProbeConfig(epochs=30, lr=1e-2))
    predicted = classifier(torch.from_numpy(features)).argmax(1).numpy()
    assert (predicted == labels).mean() > 0.97


def test_top_k_and_confusion():
    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.1, 0.5, 0.4]])
    labels = np.array([0, 1, 1])
    assert top_k_accuracy(probabilities, labels, 1) == 2 / 3
    assert top_k_accuracy(probabilities, labels, 2) == 1.0
    matrix = confusion_matrix(probabilities.argmax(1), labels, 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


@pytest.mark.slow
def test_cached_probe_of_a_run_and_a_random_encoder(training_workspace, pretrained_run):
    common = ["--dataset", "synthetic", "--workspace", str(training_workspace), "--quiet",
              *TINY]
    probe = ["--protocol", "cached", "--windows", "3"]
    run_dir = copy_run(pretrained_run, "probed")
    trained = run_slic_json("linear-probe", *common, *probe, "--run", str(run_dir),
                            "--epochs", "20")
    baseline = run_slic_json("linear-probe", *common, *probe, "--random-init", "--epochs", "20")
    for summary in (trained, baseline):
        assert summary["num_train"] == 16 and summary["num_test"] == 8
        assert 0.0 <= summary["top1"] <= summary["top5"] <= 1.0
        assert summary["protocol"] == "cached"
    assert trained["encoder"].endswith("best.pt") and "random-init" in baseline["encoder"]
    results = json.loads((run_dir / "linear-probe-cached" / "results.json").read_text())
    assert results["seconds"] > 0  # the time is set before results.json is written
    confusion = np.array(results["confusion"])
    assert confusion.sum() == 8
    assert trained["top1"] == pytest.approx(np.trace(confusion) / 8, abs=1e-6)
    assert (run_dir / "linear-probe-cached" / "confusion.png").stat().st_size > 1000
    again = run_slic_json("linear-probe", *common, *probe, "--run", str(run_dir),
                          "--epochs", "20")
    assert again["features_reused"] and again["top1"] == trained["top1"]
    other = run_slic_json("linear-probe", *common, *probe, "--run", str(run_dir),
                          "--epochs", "5")  # other settings: beside the first, same features
    assert other["features_reused"] and other["folder"] != trained["folder"]
    assert json.loads((Path(trained["folder"]) / "results.json").read_text())["top1"] == \
        trained["top1"]
    newest = run_dir / "linear-probe-cached"
    assert newest.is_symlink() and newest.resolve() == Path(other["folder"]).resolve()


@pytest.mark.slow
def test_paper_probe_trains_only_the_linear_layer_on_a_frozen_model(training_workspace,
                                                                     pretrained_run):
    """The default protocol: augmented windows through the frozen model in eval mode; the
    backbone's weights and BatchNorm statistics stay exactly as pretrained."""
    common = ["--dataset", "synthetic", "--workspace", str(training_workspace), "--quiet",
              *TINY]
    run_dir = copy_run(pretrained_run, "probed-w")
    args = ["linear-probe", *common, "--run", str(run_dir), "--epochs", "2", "--windows", "2",
            "--crops", "3", "--set=linear_probe.batch_size=4", "--device", "cpu",
            "--amp", "bf16"]
    summary = run_slic_json(*args)
    assert summary["protocol"] == "windows" and summary["num_test"] == 8
    assert summary["num_train"] == 14  # 16 training videos less a validation share of 2
    assert summary["best_epoch"] in (0, 1) and 0.0 <= summary["top1"] <= summary["top5"] <= 1
    pretrained = load_checkpoint(run_dir / "best.pt")["model"]
    probed = load_checkpoint(run_dir / "linear-probe" / "best.pt")["model"]
    backbone = [name for name in pretrained if name.startswith("backbone.")]
    assert any("running_mean" in name for name in backbone)
    for name in backbone:
        assert torch.equal(pretrained[name], probed[name]), name
    state = load_checkpoint(run_dir / "linear-probe" / "checkpoint.pt")
    assert state["epoch"] == 2 and set(state["optimizer"]["param_groups"][0]["params"]) == {0, 1}
    lines = (run_dir / "linear-probe" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]
    again = run_slic_json(*args)
    assert again["top1"] == summary["top1"] and again["best_epoch"] == summary["best_epoch"]
    refused = run_slic(*args, "--set=linear_probe.weight_decay=0.01", check=False)
    assert refused.returncode == 2 and "linear_probe.weight_decay was" in refused.stderr
    assert run_slic_json(*args, "--resume")["top1"] == summary["top1"]


@pytest.mark.slow
def test_no_validation_share_trains_on_every_video_and_keeps_the_last_epoch(
        training_workspace, pretrained_run):
    run_dir = copy_run(pretrained_run, "probed-all")
    summary = run_slic_json(
        "linear-probe", "--dataset", "synthetic", "--workspace", str(training_workspace),
        "--quiet", *TINY, "--run", str(run_dir), "--epochs", "2", "--windows", "1",
        "--crops", "1", "--set=linear_probe.batch_size=4", "--set=linear_probe.val_fraction=0")
    assert summary["num_train"] == 16 and summary["best_epoch"] == 1
    lines = (run_dir / "linear-probe" / "metrics.jsonl").read_text().splitlines()
    assert all("val_top1" not in json.loads(line) for line in lines)
