import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slic_cli.app import app
from stages.evaluation.classification import (
    confusion_figure,
    confusion_matrix,
    top_k_accuracy,
)
from stages.evaluation.sources import ENCODER_KEYS
from stages.html_report.contents import Evaluation, read_run
from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.linear_probe import LinearProbeConfig, train_linear_classifier
from stages.models.encoder import Encoder
from tests.conftest import TINY_PRETRAIN, copy_run, run_slic, run_slic_json
from tests.helpers import TinyVideo, write_frames

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
        # 8 test videos: the figures come with the warning, and say how they were made
        assert any("only 8 test videos" in w for w in summary["warnings"])
        assert summary["made"].startswith("cached protocol:") and "3 windows" in summary["made"]
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


NAMED_CLASSES = ["Archery", "Bowling", "Cycling"]


def named_workspace(root: Path) -> Path:
    """A workspace like an own dataset's (`--dataset folder`): folder/frames.h5 holds 3 named
    classes, the last with no test video (a class of few videos), and a run `mine` whose
    best.pt says it was trained with pretrain.seed 3."""
    rng = np.random.default_rng(0)
    videos = [TinyVideo(f"v_{name}_{i}", label,
                        rng.integers(0, 256, (8, 36, 40, 3), dtype=np.uint8),
                        test=i == 3 and label < 2)
              for label, name in enumerate(NAMED_CLASSES) for i in range(4)]
    write_frames(root / "folder" / "frames.h5", videos, NAMED_CLASSES)
    run = root / "folder" / "runs" / "mine"
    run.mkdir(parents=True)
    settings = {key: TINY_PRETRAIN[key] for key in ENCODER_KEYS if key in TINY_PRETRAIN}
    config = {**settings, "stride": 1, "seed": 3}
    encoder = Encoder(config["arch"], config["projection_hidden"], config["projection_dim"])
    save_checkpoint({"model": encoder.state_dict(), "config": config}, run / "best.pt")
    return root


def probe_baseline(workspace: Path, *options: str) -> dict:
    """`slic linear-probe --random-init` (cached, 3 epochs) of run `mine`, in this process."""
    result = CliRunner().invoke(app, [
        "linear-probe", "--dataset", "folder", "--workspace", str(workspace), "--run",
        str(workspace / "folder" / "runs" / "mine"), "--random-init", "--protocol", "cached",
        "--epochs", "3", "--windows", "1", "--set=linear_probe.train_clips=1",
        "--set=linear_probe.workers=0", "--json", "--quiet", *options],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_baseline_probe_names_its_seed_and_the_classes_of_frames_h5(tmp_path):
    """--random-init takes the compared run's seed (3), or the one --set pretrain.seed chose,
    and says so; the per-class rows, results.json and the report's confusion matrix name
    the classes of frames.h5, the one without test videos included."""
    workspace = named_workspace(tmp_path)
    summary = probe_baseline(workspace)
    assert summary["random_init_seed"] == 3
    assert summary["random_init"] == ("random-init encoder with mine's architecture and clip "
                                      "settings, seed 3")
    assert summary["class_names"] == NAMED_CLASSES
    assert [row["class"] for row in summary["per_class"]] == ["Archery", "Bowling"]
    folder = Path(summary["folder"])
    results = json.loads((folder / "results.json").read_text())
    assert results["class_names"] == NAMED_CLASSES and results["random_init_seed"] == 3
    evaluation = read_run(folder.parent).evaluations[0]
    assert evaluation.class_names == NAMED_CLASSES
    figure = confusion_figure(evaluation.confusion, evaluation.class_names, "probe")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == NAMED_CLASSES
    assert [t.get_text() for t in axes.get_yticklabels()] == NAMED_CLASSES
    older = {k: v for k, v in results.items() if k != "class_names"}  # before class_names
    assert Evaluation(folder, older, []).class_names == ["Archery", "Bowling", "2"]
    chosen = probe_baseline(workspace, "--set=pretrain.seed=9")
    assert chosen["random_init_seed"] == 9 and chosen["random_init"].endswith("seed 9")
    assert "seed9" in chosen["encoder"] and "seed3" in summary["encoder"]
