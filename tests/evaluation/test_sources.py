"""Where evaluation stages get their encoder: checkpoints, run folders, random init, frames."""

import os
from pathlib import Path

import pytest
import torch

from stages.evaluation.sources import (
    EncoderSource,
    encoder_source,
    frames_of,
    latest_run,
    load_encoder,
    resolve_checkpoint,
)
from stages.io.artifacts import file_checksum
from stages.io.checkpoint import save_checkpoint
from stages.models.encoder import Encoder
from stages.pretrain_config import PretrainConfig
from stages.runtime.errors import ArtifactError, ConfigError
from stages.runtime.sections import DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant

TINY = {"arch": "r3d_tiny", "projection_hidden": 16, "projection_dim": 8, "clip_length": 4,
        "stride": 2, "crop_size": 32}
DATA = DataConfig(dataset="synthetic")


def source_of(settings: PretrainConfig, workspace: WorkspaceConfig, **where) -> EncoderSource:
    """The encoder source of `where` (run_dir, checkpoint, random_init, stage, cross) with
    pretrain `settings` as the stage passes them."""
    return encoder_source(output_relevant(settings), DATA, workspace, **where)


def save_run(folder: Path, seed: int = 0, name: str = "checkpoint.pt", **config) -> Path:
    """A pretraining checkpoint of a tiny encoder made with `seed`, in `folder`."""
    torch.manual_seed(seed)
    encoder = Encoder("r3d_tiny", TINY["projection_hidden"], TINY["projection_dim"])
    path = folder / name
    save_checkpoint({"model": encoder.state_dict(), "config": {**TINY, **config}}, path)
    return path


def touch(path: Path, when: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, (when, when))
    return path


def test_latest_run_is_the_newest_checkpoint_of_the_dataset(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    runs = tmp_path / "synthetic" / "runs"
    touch(runs / "old" / "checkpoint.pt", 1_000)
    touch(runs / "new" / "checkpoint.pt", 2_000)
    touch(runs / "no-checkpoint" / "best.pt", 3_000)
    touch(tmp_path / "ucf101" / "runs" / "newer elsewhere" / "checkpoint.pt", 4_000)
    assert latest_run(workspace, DATA) == runs / "new"


def test_latest_run_falls_back_to_any_dataset_then_asks_for_pretraining(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    with pytest.raises(ConfigError, match="run slic pretrain first"):
        latest_run(workspace, DATA)
    other = touch(tmp_path / "ucf101" / "runs" / "r" / "checkpoint.pt", 1_000)
    assert latest_run(workspace, DATA) == other.parent


def test_resolve_checkpoint_prefers_the_given_file_then_best_then_last(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    given = tmp_path / "anywhere.pt"
    assert resolve_checkpoint(tmp_path / "ignored", given, workspace, DATA) == given
    run = tmp_path / "synthetic" / "runs" / "r"
    touch(run / "checkpoint.pt", 1_000)
    assert resolve_checkpoint(run, None, workspace, DATA) == run / "checkpoint.pt"
    touch(run / "best.pt", 900)
    assert resolve_checkpoint(run, None, workspace, DATA) == run / "best.pt"
    assert resolve_checkpoint(None, None, workspace, DATA) == run / "best.pt"  # the latest run
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no best.pt or checkpoint.pt"):
        resolve_checkpoint(empty, None, workspace, DATA)


def test_load_encoder_gives_the_trained_weights_in_eval_mode(tmp_path):
    path = save_run(tmp_path, seed=4)
    encoder, config = load_encoder(path)
    torch.manual_seed(4)
    original = Encoder("r3d_tiny", TINY["projection_hidden"], TINY["projection_dim"])
    for name, tensor in original.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], tensor), name
    assert not encoder.training and config["clip_length"] == 4


def test_load_encoder_refuses_what_is_not_a_pretraining_checkpoint(tmp_path):
    bare = tmp_path / "bare.pt"
    save_checkpoint({"model": {}}, bare)
    with pytest.raises(ArtifactError, match="no pretrain config"):
        load_encoder(bare)
    lacking = tmp_path / "lacking.pt"
    save_checkpoint({"model": {}, "config": {"arch": "r3d_tiny", "clip_length": 4}}, lacking)
    with pytest.raises(ArtifactError, match="lacks projection_hidden, projection_dim, stride"):
        load_encoder(lacking)
    (tmp_path / "other").mkdir()
    wider = save_run(tmp_path / "other", projection_dim=16)  # the config no longer fits
    with pytest.raises(ArtifactError, match="does not match the r3d_tiny encoder"):
        load_encoder(wider)


def test_frames_are_the_runs_own_unless_another_dataset_is_asked(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    own = touch(tmp_path / "mine" / "frames.h5", 1)
    checkpoint = tmp_path / "mine" / "runs" / "r" / "best.pt"
    assert frames_of(checkpoint, workspace, DATA, cross=False) == own
    assert frames_of(checkpoint, workspace, DATA, cross=True) == \
        tmp_path / "synthetic" / "frames.h5"
    loose = tmp_path / "loose" / "best.pt"  # not in a run folder: the configured dataset's
    assert frames_of(loose, workspace, DATA, cross=False) == tmp_path / "synthetic" / "frames.h5"


def test_random_init_source_is_seeded_and_has_its_own_folder(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))  # no run: pretrain.* settings
    settings = PretrainConfig(**TINY, seed=3)
    first = source_of(settings, workspace, random_init=True, stage="finetune")
    again = source_of(settings, workspace, random_init=True, stage="finetune")
    other = source_of(PretrainConfig(**TINY, seed=4), workspace, random_init=True,
                      stage="finetune")
    checkpoint = Path(first.description)
    assert checkpoint.name == "best.pt" and checkpoint.parent.name.startswith(
        "random-r3d_tiny-seed3-")
    assert first.folder == tmp_path / "synthetic" / "random-init" / checkpoint.parent.name / \
        "finetune"
    assert first.identity == file_checksum(checkpoint) == again.identity
    assert first.frames == tmp_path / "synthetic" / "frames.h5"
    assert first.clip == {"clip_length": 4, "stride": 2, "crop_size": 32}
    assert not first.encoder.training
    weights, same, different = (s.encoder.state_dict() for s in (first, again, other))
    assert all(torch.equal(weights[k], same[k]) for k in weights)
    assert not all(torch.equal(weights[k], different[k]) for k in weights)


def test_random_init_takes_the_settings_of_the_run_it_is_compared_with(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    settings = PretrainConfig(**{**TINY, "clip_length": 16, "crop_size": 112}, seed=3)
    alone = source_of(settings, workspace, random_init=True, stage="linear-probe")
    run = tmp_path / "synthetic" / "runs" / "r"
    run.mkdir(parents=True)
    save_run(run, name="checkpoint.pt", clip_length=8, crop_size=48)  # a run, as latest_run
    latest = source_of(settings, workspace, random_init=True, stage="linear-probe")
    named = source_of(settings, workspace, run_dir=run, random_init=True, stage="linear-probe")
    assert alone.clip == {"clip_length": 16, "stride": 2, "crop_size": 112}
    assert latest.clip == named.clip == {"clip_length": 8, "stride": 2, "crop_size": 48}
    assert latest.folder == named.folder != alone.folder
    assert latest.folder.parent.parent == tmp_path / "synthetic" / "random-init"
    seeded = PretrainConfig(**TINY, seed=3)  # same seed and encoder: the same weights
    reference = source_of(seeded, WorkspaceConfig(root=str(tmp_path / "other")),
                          random_init=True, stage="linear-probe").encoder.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in named.encoder.state_dict().items())


def test_checkpoint_source_takes_the_clip_settings_it_was_trained_with(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    run = tmp_path / "synthetic" / "runs" / "r"
    run.mkdir(parents=True)
    path = save_run(run, name="best.pt", clip_length=8, crop_size=48)
    touch(tmp_path / "synthetic" / "frames.h5", 1)
    asked = PretrainConfig(**{**TINY, "clip_length": 16})  # what the config says now: ignored
    source = source_of(asked, workspace, run_dir=run, random_init=False, stage="linear-probe")
    assert source.clip == {"clip_length": 8, "stride": 2, "crop_size": 48}
    assert source.description == str(path) and source.identity == file_checksum(path)
    assert source.folder == run / "linear-probe"
    assert source.frames == tmp_path / "synthetic" / "frames.h5"
    cross = source_of(asked, workspace, checkpoint=path, random_init=False, stage="linear-probe",
                      cross="hmdb51")
    assert cross.folder == run / "linear-probe-hmdb51"
    assert cross.frames == tmp_path / "hmdb51" / "frames.h5"
