"""Where evaluation stages get their encoder and frames: a checkpoint, a run folder or the
latest run of the workspace, and the frames.h5 of the run's dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stages.errors import ArtifactError, ConfigError
from stages.io.artifacts import file_checksum
from stages.models.encoder import Encoder
from stages.pretrain_config import PretrainConfig
from stages.shared_config import DataConfig, WorkspaceConfig
from stages.training.checkpoint import load_checkpoint
from stages.workspace import dataset_folder, frames_path, runs_folder


def latest_run(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """The run folder of the dataset whose checkpoint was written last; when the dataset has
    none, the latest run of any dataset in the workspace (so `slic retrieve` with no options
    follows `slic pretrain --dataset X`)."""
    folder = runs_folder(workspace, data)
    runs = list(folder.glob("*/checkpoint.pt")) or list(
        Path(workspace.root).glob("*/runs/*/checkpoint.pt"))
    if not runs:
        raise ConfigError(f"no pretraining run in {folder}; run slic pretrain first, or pass "
                          "--run, --checkpoint or --features")
    return max(runs, key=lambda path: path.stat().st_mtime).parent


def resolve_checkpoint(run_dir: Path | None, checkpoint: Path | None,
                       workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """`checkpoint`, else best.pt (or checkpoint.pt) of `run_dir` or of the latest run."""
    if checkpoint is not None:
        return Path(checkpoint)
    folder = Path(run_dir) if run_dir is not None else latest_run(workspace, data)
    for name in ("best.pt", "checkpoint.pt"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"{folder} holds no best.pt or checkpoint.pt; is it a pretraining run?")


# What a pretraining checkpoint's config must say to rebuild its encoder and its clips.
ENCODER_KEYS = ("arch", "projection_hidden", "projection_dim", "clip_length", "stride",
                "crop_size")


def load_encoder(path: Path) -> tuple[Encoder, dict[str, Any]]:
    """The encoder of a slic checkpoint, and the pretrain settings it was trained with."""
    state = load_checkpoint(path)
    config = state.get("config")
    if not isinstance(config, dict) or "arch" not in config:
        raise ArtifactError(f"{path} has no pretrain config; is it a slic checkpoint?")
    absent = [key for key in ENCODER_KEYS if key not in config]
    if absent:
        raise ArtifactError(f"{path} is not a slic pretraining checkpoint: its config lacks "
                            f"{', '.join(absent)}")
    try:
        encoder = Encoder(config["arch"], config["projection_hidden"], config["projection_dim"])
        encoder.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise ArtifactError(f"{path} does not match the {config['arch']} encoder of this slic "
                            f"version ({str(error).splitlines()[0]}); retrain it, or start a "
                            "run from its backbone with pretrain.init") from None
    return encoder.eval(), config


def frames_of(checkpoint: Path, workspace: WorkspaceConfig, data: DataConfig,
               cross: bool) -> Path:
    """frames.h5 to embed: the cross dataset's, else that of the dataset the run belongs to
    (`<dataset folder>/runs/<run>/`), else the configured dataset's."""
    own = checkpoint.parent.parent.parent / "frames.h5"
    if not cross and checkpoint.parent.parent.name == "runs" and own.is_file():
        return own
    return frames_path(workspace, data)


@dataclass
class EncoderSource:
    """The encoder to evaluate, the clip settings it expects and where its results go."""

    encoder: Encoder
    description: str
    clip: dict[str, int]
    identity: str  # checksum of the checkpoint, or the random-init recipe
    folder: Path
    frames: Path


def encoder_source(pretrain: PretrainConfig, data: DataConfig, workspace: WorkspaceConfig,
                   run_dir: Path | None, checkpoint: Path | None, random_init: bool,
                   stage: str, cross: str | None = None) -> EncoderSource:
    """A checkpoint's encoder (results in `<run>/<stage>/`), or a random-init one of
    pretrain.arch and pretrain.seed (results in `<dataset>/random-init/<name>/<stage>/`).

    The frames are those of the run's dataset, or of dataset `cross` (a model pretrained on
    UCF101 evaluated on HMDB51, for example; results then go to `<run>/<stage>-<cross>/`).
    """
    if random_init:
        torch.manual_seed(pretrain.seed)
        encoder = Encoder(pretrain.arch, pretrain.projection_hidden, pretrain.projection_dim)
        name = f"random-{pretrain.arch}-seed{pretrain.seed}"
        folder = dataset_folder(workspace, data) / "random-init" / name
        clip = {k: getattr(pretrain, k) for k in ("clip_length", "stride", "crop_size")}
        return EncoderSource(encoder.eval(), name, clip, name, folder / stage,
                             dataset_folder(workspace, data) / "frames.h5")
    path = resolve_checkpoint(run_dir, checkpoint, workspace, data)
    encoder, trained = load_encoder(path)
    clip = {k: trained[k] for k in ("clip_length", "stride", "crop_size")}
    target = DataConfig(**{**data.__dict__, "dataset": cross, "name": None}) if cross else data
    folder = path.parent / (f"{stage}-{cross}" if cross else stage)
    return EncoderSource(encoder, str(path), clip, file_checksum(path), folder,
                         frames_of(path, workspace, target, cross is not None))
