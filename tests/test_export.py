"""`slic export`: a backbone written for torchvision (and safetensors) loads without slic into
the matching torchvision model and gives the same features as slic's backbone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stages.export import build_from_recipe, export
from stages.io.checkpoint import save_checkpoint
from stages.models.encoder import Encoder
from stages.runtime.errors import ConfigError

CLIP = {"clip_length": 4, "stride": 2, "crop_size": 32}

# Loads the weights as a user would: torch and torchvision only, the recipe from the JSON.
WITHOUT_SLIC = """
import json, os, sys
import torch
description = json.load(open(sys.argv[1]))
os.chdir(os.path.dirname(sys.argv[1]))
namespace = {}
exec(description["python"], namespace)
with torch.no_grad():
    torch.save(namespace["model"](torch.load(sys.argv[2])), sys.argv[3])
assert not [name for name in sys.modules if name.split(".")[0] in ("stages", "slic_cli")]
"""


def trained_run(folder: Path, arch: str, crop_size: int = 32, frames: int = 4) -> Encoder:
    """A run folder whose best.pt holds an encoder with non-trivial weights and BatchNorm
    statistics (a training-mode pass over random clips)."""
    torch.manual_seed(0)
    encoder = Encoder(arch, 64, 16)
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
        encoder.train()
        encoder(torch.randn(2, 3, frames, crop_size, crop_size))
    encoder.eval()
    config = {"arch": arch, "projection_hidden": 64, "projection_dim": 16, **CLIP,
              "clip_length": frames, "crop_size": crop_size}
    save_checkpoint({"model": encoder.state_dict(), "epoch": 3, "config": config},
                    folder / "best.pt")
    return encoder


def clips(crop_size: int = 32, frames: int = 4) -> torch.Tensor:
    return torch.randn(2, 3, frames, crop_size, crop_size,
                       generator=torch.Generator().manual_seed(1))


@pytest.mark.slow
def test_r3d_18_loads_into_torchvision_without_slic(tmp_path):
    encoder = trained_run(tmp_path / "run", "r3d_18")
    result = export(tmp_path / "run")
    assert result.weights == tmp_path / "run" / "export" / "r3d_18-backbone.pt"
    assert result.max_difference is not None and result.max_difference < 1e-5
    description = json.loads(result.description.read_text())
    assert "torchvision.models.video.r3d_18" in description["python"]
    assert description["input"]["frames_T"] == 4 and description["input"]["crop_size_S"] == 32
    assert description["input"]["mean"] == [0.485, 0.456, 0.406]
    torch.save(clips(), tmp_path / "clips.pt")
    process = subprocess.run([sys.executable, "-c", WITHOUT_SLIC, str(result.description),
                              str(tmp_path / "clips.pt"), str(tmp_path / "features.pt")],
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    theirs = torch.load(tmp_path / "features.pt")
    with torch.no_grad():
        ours = encoder.backbone(clips())
    assert theirs.shape == (2, 512)
    assert float((theirs - ours).abs().max()) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("arch, crop_size, frames", [("r2plus1d_18", 32, 4), ("s3d", 64, 8)])
def test_other_torchvision_backbones_give_the_same_features(tmp_path, arch, crop_size, frames):
    encoder = trained_run(tmp_path, arch, crop_size, frames)
    result = export(tmp_path, "torchvision", tmp_path / "out" / "weights.pt")
    model = build_from_recipe(json.loads(result.description.read_text())["python"]
                              .replace("'weights.pt'", repr(str(result.weights))), result.weights)
    with torch.no_grad():
        inputs = clips(crop_size, frames)
        difference = (model(inputs) - encoder.backbone(inputs)).abs().max()
    assert float(difference) < 1e-5 and result.max_difference < 1e-5


@pytest.mark.slow
def test_safetensors_hold_the_same_tensors(tmp_path):
    import safetensors.torch as safetensors
    encoder = trained_run(tmp_path, "r3d_tiny")
    with pytest.raises(ConfigError, match="no torchvision counterpart"):
        export(tmp_path, "torchvision")
    result = export(tmp_path, "safetensors")
    assert result.max_difference is None  # nothing to build it from without slic
    loaded = safetensors.load_file(str(result.weights))
    own = encoder.backbone.state_dict()
    assert loaded.keys() == own.keys()
    assert all(torch.equal(loaded[key], own[key]) for key in own)
    metadata = json.loads(safetensors.safe_open(str(result.weights), "pt").metadata()["slic"])
    assert metadata["arch"] == "r3d_tiny" and metadata["input"]["frame_differences"]


def test_a_folder_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no best.pt"):
        export(tmp_path)
    with pytest.raises(ConfigError, match="torchvision, safetensors"):
        export(tmp_path, "onnx")
