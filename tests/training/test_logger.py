"""TensorBoard logging, read back with TensorBoard's own reader: scalars every epoch, the
hyperparameters with the final metrics, and the final embeddings for the projector."""

from __future__ import annotations

import numpy as np
import pytest

from stages.runtime.errors import ConfigError
from stages.training.loggers import (
    TENSORBOARD_FOLDER,
    LoggedEmbeddings,
    NullLogger,
    open_logger,
    require_logger,
    scalar_tag,
)
from stages.training.monitor import MetricsLog

tensorboard = pytest.importorskip(
    "tensorboard", reason="the tensorboard extra is not installed (pip install "
    "'slic[tensorboard]'); TensorBoard logging cannot be read back")

from google.protobuf import text_format  # noqa: E402 - tensorboard brings protobuf
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402
from tensorboard.plugins.projector import projector_config_pb2  # noqa: E402


def read_events(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def scalars(events, tag):
    return [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]


def hyperparameters(events) -> dict:
    contents = events.PluginTagToContent("hparams")
    start = next(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
                 for tag, content in contents.items() if tag.endswith("session_start_info"))
    return {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for key, value in start.hparams.items()}


def projector(folder):
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(),
                               projector_config_pb2.ProjectorConfig())
    [embedding] = config.embeddings
    rows = (folder / embedding.metadata_path).read_text().splitlines()
    tensors = np.loadtxt(folder / embedding.tensor_path, delimiter="\t", ndmin=2)
    return embedding.tensor_name, rows, tensors


def test_tags_follow_the_plots():
    assert scalar_tag("r1") == "recall/r1" and scalar_tag("loss") == "loss/loss"
    assert scalar_tag("something_new") == "other/something_new"


def test_unknown_loggers_are_refused():
    with pytest.raises(ConfigError, match="none, tensorboard"):
        require_logger("wandb")
    assert isinstance(open_logger("none", None, 0), NullLogger)


@pytest.mark.slow  # loads torch
def test_epochs_hparams_and_embeddings_read_back(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl", open_logger("tensorboard", tmp_path, 0))
    for epoch in range(4):
        log.append({"epoch": epoch, "loss": 1.0 - 0.1 * epoch, "r1": 0.1 * epoch,
                    "ranks_agree": True, "positive_fp_rate": None})
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    log.mirror.log_final({"arch": "r3d_tiny", "lr": 0.1, "init": None},
                         {"r1": 0.3, "nmi": 0.5, "num_clusters": 2},
                         LoggedEmbeddings(features, ["a", "b", "c", "d"],
                                          ["Rise", "Rise", "Fall", "Fall"],
                                          np.array([0, 0, 1, 1]), 4))
    log.mirror.close()
    folder = tmp_path / TENSORBOARD_FOLDER
    events = read_events(folder)
    assert scalars(events, "loss/loss") == [(0, 1.0), (1, 0.9), (2, 0.8), (3, 0.7)]
    assert scalars(events, "recall/r1")[-1] == (3, 0.3)
    assert "other/ranks_agree" not in events.Tags()["scalars"]
    assert scalars(events, "final/nmi") == [(4, 0.5)]
    assert hyperparameters(events) == {"arch": "r3d_tiny", "lr": 0.1, "init": "none"}
    name, rows, tensors = projector(folder)
    assert name.startswith("final_embeddings")
    assert rows == ["class\tcluster\tvideo", "Rise\t0\ta", "Rise\t0\tb", "Fall\t1\tc",
                    "Fall\t1\td"]
    assert np.array_equal(tensors, features)
    assert len(log.records()) == 4  # metrics.jsonl stays the record


@pytest.mark.slow  # loads torch
def test_a_resumed_run_replaces_the_events_it_redoes(tmp_path):
    first = open_logger("tensorboard", tmp_path, 0)
    for epoch in range(4):
        first.log_epoch({"epoch": epoch, "loss": float(epoch)})
    first.close()
    resumed = open_logger("tensorboard", tmp_path, 2)
    for epoch in (2, 3):
        resumed.log_epoch({"epoch": epoch, "loss": 10.0 + epoch})
    resumed.close()
    events = read_events(tmp_path / TENSORBOARD_FOLDER)
    assert scalars(events, "loss/loss") == [(0, 0.0), (1, 1.0), (2, 12.0), (3, 13.0)]
    restarted = open_logger("tensorboard", tmp_path, 0)  # a new run starts empty
    restarted.log_epoch({"epoch": 0, "loss": 5.0})
    restarted.close()
    assert scalars(read_events(tmp_path / TENSORBOARD_FOLDER), "loss/loss") == [(0, 5.0)]


@pytest.mark.slow
def test_pretrain_logs_to_tensorboard_when_asked(training_workspace):
    from stages.pretrain import PretrainConfig, run
    from stages.runtime.sections import DataConfig, WorkspaceConfig

    settings = PretrainConfig(arch="r3d_tiny", clip_length=4, crop_size=32, batch_size=6,
                              projection_hidden=64, projection_dim=32, cluster_every=1,
                              eval_every=1, workers=0, epochs=2, run_name="tensorboard")
    settings.logger = "tensorboard"  # pretrain.logger, until the config declares it
    result = run(settings, DataConfig(dataset="synthetic"),
                 WorkspaceConfig(root=str(training_workspace)), resume=False)
    folder = result.run_folder / TENSORBOARD_FOLDER
    events = read_events(folder)
    assert [step for step, _ in scalars(events, "loss/loss")] == [0, 1]
    assert [step for step, _ in scalars(events, "recall/r1")] == [0, 1]
    assert scalars(events, "clusters/num_clusters")[-1][0] == 2  # the final clustering
    found = hyperparameters(events)
    assert found["arch"] == "r3d_tiny" and found["epochs"] == 2
    assert any(tag.startswith("final/") for tag in events.Tags()["scalars"])
    _, rows, tensors = projector(folder)
    assert rows[0] == "class\tcluster\tvideo" and len(rows) - 1 == len(tensors) == 16
    assert tensors.shape[1] == 32
