import json

import numpy as np
import torch

from stages.evaluation.classification import confusion_matrix, top_k_accuracy
from stages.linear_probe import LinearProbeConfig, train_linear_classifier
from tests.conftest import run_slic_json

TINY = ["--set=pretrain.arch=r3d_tiny", "--set=pretrain.clip_length=4",
        "--set=pretrain.crop_size=32", "--set=pretrain.projection_hidden=64",
        "--set=pretrain.projection_dim=32", "--set=pretrain.batch_size=6",
        "--set=pretrain.workers=0", "--set=linear_probe.workers=0",
        "--set=linear_probe.train_clips=2", "--set=linear_probe.clips=3"]


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


def test_probe_a_run_and_a_random_encoder(training_workspace):
    common = ["--dataset", "synthetic", "--workspace", str(training_workspace), "--quiet",
              *TINY]
    run_slic_json("pretrain", *common, "--epochs", "1", "--run-name", "probed", "--force")
    run_dir = training_workspace / "synthetic" / "runs" / "probed"
    trained = run_slic_json("linear-probe", *common, "--run", str(run_dir), "--epochs", "20")
    baseline = run_slic_json("linear-probe", *common, "--random-init", "--epochs", "20")
    for summary in (trained, baseline):
        assert summary["num_train"] == 16 and summary["num_test"] == 8
        assert 0.0 <= summary["top1"] <= summary["top5"] <= 1.0
    assert trained["encoder"].endswith("best.pt") and baseline["encoder"].startswith("random")
    results = json.loads((run_dir / "linear-probe" / "results.json").read_text())
    assert np.array(results["confusion"]).sum() == 8
    assert (run_dir / "linear-probe" / "confusion.png").stat().st_size > 1000
    again = run_slic_json("linear-probe", *common, "--run", str(run_dir), "--epochs", "20")
    assert again["features_reused"] and again["top1"] == trained["top1"]
