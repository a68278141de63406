"""`slic inspect` on checkpoints (read without unpickling), results.json and per-video tables."""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch
from torch import nn

from stages.inspect_artifact import describe
from stages.io.checkpoint import save_checkpoint
from stages.io.checkpoint_reader import TensorInfo, read_checkpoint_structure
from stages.runtime.errors import ArtifactError, ConfigError


def small_model() -> nn.Module:
    return nn.Sequential(nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4), nn.Flatten(), nn.LazyLinear(5))


@pytest.fixture
def resumable_checkpoint(tmp_path):
    """A checkpoint shaped like a training run's: weights, optimizer state, settings."""
    model = small_model()
    model(torch.zeros(2, 3, 4, 6, 6))  # materialise the lazy layer: (2, 4*2*4*4) -> (2, 5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 4, 6, 6)).sum().backward()
    optimizer.step()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": 3, "arch": "tiny", "config": {"arch": "tiny", "crop_size": 6},
                     "torch_rng": torch.get_rng_state(), "slic_version": "0.0.test"}, path)
    return path, model


def test_checkpoint_structure_matches_what_torch_loads(resumable_checkpoint):
    path, model = resumable_checkpoint
    read = read_checkpoint_structure(path)
    loaded = torch.load(path, weights_only=True)
    assert read["epoch"] == 3 and read["config"] == {"arch": "tiny", "crop_size": 6}
    assert list(read["model"]) == list(loaded["model"])
    for name, tensor in loaded["model"].items():
        assert read["model"][name] == TensorInfo(str(tensor.dtype).removeprefix("torch."),
                                                 tuple(tensor.shape))
    assert read["optimizer"]["param_groups"][0]["momentum"] == 0.9


def test_inspect_counts_parameters_of_a_checkpoint(resumable_checkpoint):
    path, model = resumable_checkpoint
    described = describe(path)
    assert described["kind"] == "checkpoint" and described["arch"] == "tiny"
    assert described["epoch"] == 3 and described["resumable"]
    assert described["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert described["num_values"] == sum(t.numel() for t in model.state_dict().values())
    assert sum(described["parameters_by_part"].values()) == described["num_parameters"]
    json.dumps(described)  # --json can print it


def test_inspect_reads_a_checkpoint_without_torch(resumable_checkpoint):
    path, _ = resumable_checkpoint
    code = ("import sys; from stages.inspect_artifact import describe; "
            f"d = describe({str(path)!r}); assert d['epoch'] == 3; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_pickle_that_would_run_code_is_never_called(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"model": Payload()}, protocol=2))
    with pytest.raises(ArtifactError, match="no model weights"):
        describe(path)
    assert not marker.exists()


def test_inspect_shows_a_results_file_and_refuses_other_json(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"stage": "linear-probe", "top1": 0.5,
                                   "per_class": [{"class": "a", "accuracy": 0.5}]}))
    described = describe(results)
    assert described["kind"] == "results" and described["top1"] == 0.5
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="no 'stage' key"):
        describe(other)


def test_inspect_videos_lists_every_video_of_a_frames_artifact(tiny_frames):
    described = describe(tiny_frames, videos=True)
    assert len(described["videos"]) == described["num_videos"] == 8
    assert sum(row["num_images"] for row in described["videos"]) == described["num_images"]
    assert all(set(row["splits"].values()) <= {"train", "test", "unused"}
               for row in described["videos"])


def test_inspect_videos_of_a_checkpoint_is_a_user_error(resumable_checkpoint):
    with pytest.raises(ConfigError, match="no per-video table"):
        describe(resumable_checkpoint[0], videos=True)
