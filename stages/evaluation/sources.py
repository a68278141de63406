"""Where evaluation stages get their encoder and frames: a checkpoint, a run folder or the
latest run of the workspace, and the frames.h5 of the run's dataset (refused where its videos
are unlabelled and the stage needs classes)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stages.evaluation.random_init import RandomInit
from stages.io.artifacts import KIND_FRAMES, file_checksum, open_artifact, read_video_table
from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.io.checkpoint_reader import read_checkpoint_structure
from stages.io.run_folder import RunFolder, runs_with_checkpoints
from stages.models.encoder import Encoder
from stages.runtime.errors import ArtifactError, ConfigError, DataError
from stages.runtime.sections import DataConfig, WorkspaceConfig
from stages.runtime.workspace import (
    RUNS,
    dataset_folder,
    dataset_folder_of,
    frames_of_dataset,
    frames_path,
    random_init_folder,
    runs_folder,
)


def latest_run(workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """The run folder of the dataset whose checkpoint was written last. Only when no dataset
    was named (data.name unset, data.dataset the default) and the default has none, the
    latest run of any dataset in the workspace (so `slic retrieve` with no options follows
    `slic pretrain --dataset X`); a named dataset without a run is an error, never another
    dataset's run."""
    folder = runs_folder(workspace, data)
    runs = runs_with_checkpoints(folder)
    elsewhere = [run for other in sorted(Path(workspace.root).glob(f"*/{RUNS}"))
                 for run in runs_with_checkpoints(other)]
    named = data.name is not None or data.dataset != DataConfig().dataset
    if not runs and not named:
        runs = elsewhere
    if not runs:
        others = sorted({run.parent.parent.name for run in elsewhere})
        hint = f" (runs exist for {', '.join(others)}: pass --name)" if others else ""
        raise ConfigError(f"no pretraining run in {folder}{hint}; run slic pretrain first, or "
                          "pass --run, --checkpoint or --features")
    return max(runs, key=lambda run: RunFolder(run).checkpoint.stat().st_mtime)


def resolve_checkpoint(run_dir: Path | None, checkpoint: Path | None,
                       workspace: WorkspaceConfig, data: DataConfig) -> Path:
    """`checkpoint`, else best.pt (or checkpoint.pt) of `run_dir` or of the latest run."""
    if checkpoint is not None:
        return Path(checkpoint)
    folder = Path(run_dir) if run_dir is not None else latest_run(workspace, data)
    found = RunFolder(folder).saved_checkpoint()
    if found is not None:
        return found
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
    """frames.h5 to embed: the cross dataset's, else that of the dataset the checkpoint
    belongs to (`<dataset folder>/runs/<run>/` or `<dataset folder>/random-init/<name>/`),
    else the configured dataset's."""
    dataset = dataset_folder_of(checkpoint)
    if not cross and dataset is not None and frames_of_dataset(dataset).is_file():
        return frames_of_dataset(dataset)
    return frames_path(workspace, data)


def compared_run(run_dir: Path | None, checkpoint: Path | None, workspace: WorkspaceConfig,
                 data: DataConfig) -> Path | None:
    """The checkpoint a random-init baseline is compared with: `checkpoint`, that of
    `run_dir`, else that of the dataset's latest run; None when there is no run at all."""
    if run_dir is None and checkpoint is None:
        try:
            return resolve_checkpoint(None, None, workspace, data)
        except ConfigError:
            return None
    return resolve_checkpoint(run_dir, checkpoint, workspace, data)


def _compared_settings(like: Path) -> dict[str, Any]:
    """The pretrain config saved in checkpoint `like`, checked to hold ENCODER_KEYS."""
    saved = read_checkpoint_structure(like)
    trained = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(trained, dict) or any(k not in trained for k in ENCODER_KEYS):
        raise ArtifactError(f"{like} has no pretrain config with {', '.join(ENCODER_KEYS)}"
                            "; a random-init baseline cannot take its settings")
    return trained


def baseline_seed(pretrain: dict[str, Any], like: Path | None, seed: int | None) -> int:
    """The seed of a random-init baseline: `seed` where the user chose one (`--set
    pretrain.seed`), else the pretrain.seed the compared run `like` was trained with (from its
    checkpoint's config), else `pretrain["seed"]`."""
    if seed is not None:
        return seed
    if like is not None:
        return int(_compared_settings(like).get("seed", pretrain["seed"]))
    return pretrain["seed"]


def random_init_checkpoint(pretrain: dict[str, Any], workspace: WorkspaceConfig,
                           data: DataConfig, *, like: Path | None, name: str | None = None,
                           seed: int | None = None) -> Path:
    """best.pt of an untrained encoder, built under `torch.manual_seed(baseline_seed(...))`
    (the compared run's seed unless `seed` is given), with the architecture, projection and
    clip settings of checkpoint `like` (the run it is compared with), or of `pretrain` (the
    output-relevant pretrain settings) when there is none, so every evaluation treats the
    baseline exactly like a trained run. Its config holds those settings and the seed only:
    nothing of a training it never had.

    It lives in `<dataset folder>/random-init/<name>/` (name: architecture, seed and a tag of
    the settings), beside the compared run's dataset; written once, then reused with the
    results beside it. A `name` given (the demo's) is taken while its encoder has this seed
    and these settings; another one sits beside it as `<name>-seed<S>-<tag>`.
    """
    seed = baseline_seed(pretrain, like, seed)
    source, folder = pretrain, dataset_folder(workspace, data)
    if like is not None:
        source, folder = _compared_settings(like), dataset_folder_of(like) or folder
    settings = {key: source[key] for key in ENCODER_KEYS}
    tag = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(),
                          digest_size=4).hexdigest()
    recipe = f"seed{seed}-{tag}"
    names = [f"random-{settings['arch']}-{recipe}"] if name is None else [name,
                                                                          f"{name}-{recipe}"]
    config = {**settings, "seed": seed}
    for candidate in names:
        path = RunFolder(random_init_folder(folder) / candidate).best
        if not path.is_file():
            break
        if _saved_config(path) == config:
            return path
    else:
        raise ArtifactError(f"{path} holds another random-init encoder than the one asked for "
                            f"(seed {seed}, {settings}); remove its folder")
    torch.manual_seed(seed)
    encoder = Encoder(settings["arch"], settings["projection_hidden"],
                      settings["projection_dim"])
    save_checkpoint({"model": encoder.state_dict(), "epoch": -1, "arch": settings["arch"],
                     "config": config, "criterion": "random init",
                     "compared_with": None if like is None else str(like)}, path)
    return path


def _saved_config(path: Path) -> Any:
    """The config a random-init best.pt was saved with (None when it has none)."""
    saved = read_checkpoint_structure(path)
    return saved.get("config") if isinstance(saved, dict) else None


def random_init_baseline(pretrain: dict[str, Any], workspace: WorkspaceConfig,
                         data: DataConfig, *, run_dir: Path | None, checkpoint: Path | None,
                         seed: int | None = None) -> tuple[Path, RandomInit]:
    """best.pt of the random-init baseline compared with `run_dir` or `checkpoint` (else the
    latest run; `compared_run`), and what it is: the seed it was drawn under (`baseline_seed`)
    and the compared run."""
    like = compared_run(run_dir, checkpoint, workspace, data)
    chosen = baseline_seed(pretrain, like, seed)
    path = random_init_checkpoint(pretrain, workspace, data, like=like, seed=chosen)
    return path, RandomInit(chosen, like)


@dataclass
class EncoderSource:
    """The encoder to evaluate, the clip settings it expects and where its results go;
    `random_init` says what the encoder is when it is a random-init baseline."""

    encoder: Encoder
    description: str
    clip: dict[str, int]
    identity: str  # checksum of the checkpoint, or the random-init recipe
    folder: Path
    frames: Path
    random_init: RandomInit | None = None


def encoder_source(pretrain: dict[str, Any], data: DataConfig, workspace: WorkspaceConfig, *,
                   stage: str, run_dir: Path | None = None, checkpoint: Path | None = None,
                   random_init: bool = False, random_init_seed: int | None = None,
                   cross: str | None = None) -> EncoderSource:
    """A checkpoint's encoder (results in `<checkpoint folder>/<stage>/`). With
    `random_init`, an untrained encoder with the settings of the run it is compared with
    (`random_init_baseline`; seed `random_init_seed`, else that run's pretrain.seed; results
    in `<dataset>/random-init/<name>/<stage>/`).

    The frames are those of the run's dataset, or of dataset `cross` (a model pretrained on
    UCF101 evaluated on HMDB51, for example; results then go to `<run>/<stage>-<cross>/`).
    """
    baseline = None
    if random_init:
        path, baseline = random_init_baseline(pretrain, workspace, data, run_dir=run_dir,
                                              checkpoint=checkpoint, seed=random_init_seed)
    else:
        path = resolve_checkpoint(run_dir, checkpoint, workspace, data)
    encoder, trained = load_encoder(path)
    clip = {k: trained[k] for k in ("clip_length", "stride", "crop_size")}
    target = DataConfig(**{**data.__dict__, "dataset": cross, "name": None}) if cross else data
    folder = path.parent / (f"{stage}-{cross}" if cross else stage)
    return EncoderSource(encoder, str(path), clip, file_checksum(path), folder,
                         frames_of(path, workspace, target, cross is not None), baseline)


def evaluated_frames(workspace: WorkspaceConfig, data: DataConfig, *, run_dir: Path | None,
                     checkpoint: Path | None, random_init: bool, cross: str | None) -> Path:
    """The frames.h5 that `encoder_source` (and retrieve) will read, found without writing
    anything: a random-init baseline is not drawn yet, but it will sit beside the run it is
    compared with, so its frames are that run's."""
    target = DataConfig(**{**data.__dict__, "dataset": cross, "name": None}) if cross else data
    path = (compared_run(run_dir, checkpoint, workspace, data) if random_init
            else resolve_checkpoint(run_dir, checkpoint, workspace, data))
    if path is None:
        return frames_path(workspace, target)
    return frames_of(path, workspace, target, cross is not None)


def require_labelled(frames: Path, why: str) -> None:
    """Refuse, naming `frames` and `why` the stage needs labels, a frames.h5 whose videos are
    all unlabelled (label -1: data.labels none, or a folder without class folders). A file
    that is not there is left to the stage, which says so in its own words."""
    if not Path(frames).is_file():
        return
    with open_artifact(Path(frames), KIND_FRAMES) as h5:
        labels = read_video_table(h5).columns["label"]
    if len(labels) and bool((labels < 0).all()):
        raise DataError(f"{frames} holds unlabelled videos (data.labels none, or a folder "
                        f"without class folders): {why}; --cross NAME evaluates on a labelled "
                        "dataset")
