"""Where evaluation stages get their encoder: checkpoints, run folders, random init, frames."""

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from stages.evaluation.random_init import RandomInit, baseline_summary
from stages.evaluation.sources import (
    EncoderSource,
    compared_run,
    encoder_source,
    frames_of,
    latest_run,
    load_encoder,
    random_init_checkpoint,
    resolve_checkpoint,
)
from stages.io.artifacts import file_checksum
from stages.io.checkpoint import load_checkpoint, save_checkpoint
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


def test_latest_run_falls_back_to_any_dataset_only_when_none_was_named(tmp_path):
    """`slic retrieve` with no options follows `slic pretrain --dataset X`; a named dataset
    (--dataset, --name) without a run is an error, never another dataset's run."""
    workspace = WorkspaceConfig(root=str(tmp_path))
    with pytest.raises(ConfigError) as nothing:
        latest_run(workspace, DataConfig())
    assert str(nothing.value) == (f"no pretraining run in {tmp_path / 'ucf101' / 'runs'}; run "
                                  "slic pretrain first, or pass --run, --checkpoint or --features")
    touch(tmp_path / "hmdb51" / "runs" / "h" / "checkpoint.pt", 500)
    with pytest.raises(ConfigError, match=r"\(runs exist for hmdb51: pass --name\); run slic"):
        latest_run(workspace, DataConfig(dataset="kinetics400"))
    other = touch(tmp_path / "synthetic" / "runs" / "r" / "checkpoint.pt", 1_000)
    assert latest_run(workspace, DataConfig()) == other.parent  # nothing named: the latest
    for named in (DataConfig(name="nothere"), DataConfig(dataset="kinetics400"),
                  DataConfig(dataset="synthetic", name="mine")):
        with pytest.raises(ConfigError, match="runs exist for hmdb51, synthetic: pass --name"):
            latest_run(workspace, named)


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


def test_a_named_random_init_folder_is_reused_only_for_its_own_seed(tmp_path):
    """The demo names its baseline: asked again with another seed, the old one is kept and
    the new one sits beside it; asked with the first seed, the first is reused."""
    workspace = WorkspaceConfig(root=str(tmp_path))
    pretrain = output_relevant(PretrainConfig(**TINY))
    first = random_init_checkpoint(pretrain, workspace, DATA, like=None, name="demo", seed=1)
    before = first.read_bytes()
    second = random_init_checkpoint(pretrain, workspace, DATA, like=None, name="demo", seed=2)
    assert first.parent.name == "demo" and second.parent.name.startswith("demo-seed2-")
    assert first.read_bytes() == before
    assert load_checkpoint(second)["config"]["seed"] == 2
    assert random_init_checkpoint(pretrain, workspace, DATA, like=None, name="demo",
                                  seed=1) == first
    assert random_init_checkpoint(pretrain, workspace, DATA, like=None, name="demo",
                                  seed=2) == second


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


def two_runs(root: Path) -> tuple[Path, Path]:
    """An older run (8-frame 48-px clips) and the latest run (TINY's clips) of `synthetic`."""
    runs = root / "synthetic" / "runs"
    (runs / "old").mkdir(parents=True)
    (runs / "new").mkdir()
    old = save_run(runs / "old", clip_length=8, crop_size=48)
    new = save_run(runs / "new")
    os.utime(old, (1_000, 1_000))
    os.utime(new, (2_000, 2_000))
    return old, new


def test_compared_run_is_the_one_named_else_the_latest_else_none(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    assert compared_run(None, None, workspace, DATA) is None  # no run at all: no comparison
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no best.pt or checkpoint.pt"):
        compared_run(empty, None, workspace, DATA)  # a named run that is none is an error
    old, new = two_runs(tmp_path)
    assert compared_run(None, None, workspace, DATA) == new
    assert compared_run(old.parent, None, workspace, DATA) == old
    given = tmp_path / "given.pt"
    assert compared_run(None, given, workspace, DATA) == given


def test_checkpoint_source_defaults_to_the_trained_encoder_of_the_latest_run(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    old, new = two_runs(tmp_path)
    settings = PretrainConfig(**TINY)
    latest = encoder_source(output_relevant(settings), DATA, workspace, stage="retrieval")
    assert latest.description == str(new) and latest.folder == new.parent / "retrieval"
    named = encoder_source(output_relevant(settings), DATA, workspace, stage="retrieval",
                           run_dir=old.parent)  # random_init left out: the trained encoder
    assert named.description == str(old) and named.identity == file_checksum(old)


def test_random_init_compared_with_an_older_run_takes_that_runs_settings(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    old, _ = two_runs(tmp_path)  # the latest run has TINY's clips
    settings = PretrainConfig(**TINY, seed=3)
    by_folder = source_of(settings, workspace, run_dir=old.parent, random_init=True,
                          stage="retrieval")
    by_file = source_of(settings, workspace, checkpoint=old, random_init=True, stage="retrieval")
    assert by_folder.clip == by_file.clip == {"clip_length": 8, "stride": 2, "crop_size": 48}
    saved = load_checkpoint(Path(by_file.description))
    assert saved["compared_with"] == str(old)


def test_latest_run_says_which_options_avoid_it(tmp_path):
    with pytest.raises(ConfigError, match="pass --run, --checkpoint or --features"):
        latest_run(WorkspaceConfig(root=str(tmp_path)), DATA)


def test_a_checkpoint_of_another_encoder_is_refused_with_the_reason_and_the_fix(tmp_path):
    wider = save_run(tmp_path, projection_dim=16)
    with pytest.raises(ArtifactError) as refused:
        load_encoder(wider)
    message = str(refused.value)
    assert "(Error(s) in loading state_dict for Encoder" in message  # torch's first line
    assert "retrain it, or start a run from its backbone with pretrain.init" in message


def test_random_init_refuses_a_compared_checkpoint_without_encoder_settings(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    pretrain = output_relevant(PretrainConfig(**TINY))
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)  # a torch file, but not a dict
    lacking = tmp_path / "lacking.pt"
    save_checkpoint({"model": {}, "config": {k: v for k, v in TINY.items() if k != "stride"}},
                    lacking)
    for like in (listed, lacking):
        with pytest.raises(ArtifactError) as refused:
            random_init_checkpoint(pretrain, workspace, DATA, like=like)
        assert str(refused.value) == (
            f"{like} has no pretrain config with arch, projection_hidden, projection_dim, "
            "clip_length, stride, crop_size; a random-init baseline cannot take its settings")


def test_random_init_lives_beside_the_compared_runs_dataset(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    run = tmp_path / "ucf101" / "runs" / "r"
    run.mkdir(parents=True)
    like = save_run(run)
    pretrain = output_relevant(PretrainConfig(**TINY, seed=3))
    path = random_init_checkpoint(pretrain, workspace, DATA, like=like)
    assert path.parent.parent == tmp_path / "ucf101" / "random-init"
    alone = random_init_checkpoint(pretrain, workspace, DATA, like=None)
    assert alone.parent.parent == tmp_path / "synthetic" / "random-init"


def test_random_init_names_its_recipe_and_marks_the_checkpoint_untrained(tmp_path):
    """The folder name is the architecture, the seed and a stable tag of the encoder settings
    (blake2b, 4 bytes, of their JSON with sorted keys): the same baseline is found again by
    later runs and versions, and its results are reused."""
    workspace = WorkspaceConfig(root=str(tmp_path))
    pretrain = output_relevant(PretrainConfig(**TINY, seed=3))
    path = random_init_checkpoint(pretrain, workspace, DATA, like=None)
    recipe = json.dumps({key: TINY[key] for key in sorted(TINY)}, separators=(", ", ": "))
    tag = hashlib.blake2b(recipe.encode(), digest_size=4).hexdigest()
    assert path == tmp_path / "synthetic" / "random-init" / f"random-r3d_tiny-seed3-{tag}" / \
        "best.pt"
    saved = load_checkpoint(path)
    assert (saved["epoch"], saved["arch"], saved["criterion"]) == (-1, "r3d_tiny", "random init")
    assert saved["compared_with"] is None
    assert {k: saved["config"][k] for k in TINY} == TINY
    assert random_init_checkpoint(pretrain, workspace, DATA, like=None, name="mine") == \
        tmp_path / "synthetic" / "random-init" / "mine" / "best.pt"


def save_seeded_run(folder: Path, seed: int) -> Path:
    """best.pt of a run trained with pretrain.seed `seed` (its config says so), whose own
    weights were drawn under another seed."""
    folder.mkdir(parents=True)
    torch.manual_seed(1000 + seed)
    encoder = Encoder("r3d_tiny", TINY["projection_hidden"], TINY["projection_dim"])
    path = folder / "best.pt"
    save_checkpoint({"model": encoder.state_dict(), "config": {**TINY, "seed": seed}}, path)
    return path


def features_of(encoder: Encoder) -> torch.Tensor:
    """(2, 8) projections of two fixed random clips."""
    clips = torch.rand(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return encoder.eval().embed(clips)


def test_random_init_takes_the_seed_the_compared_run_was_trained_with(tmp_path):
    """`--random-init --run RUN` draws the untrained encoder under RUN's pretrain.seed, not
    under the pretrain.seed of the command (7 by default); a seed the user sets wins."""
    workspace = WorkspaceConfig(root=str(tmp_path))
    runs = tmp_path / "synthetic" / "runs"
    settings = PretrainConfig(**TINY)  # seed 7, the default
    found = {}
    for seed in (3, 11):
        save_seeded_run(runs / f"run{seed}", seed)
        found[seed] = source_of(settings, workspace, run_dir=runs / f"run{seed}",
                                random_init=True, stage="retrieval")
    for seed, source in found.items():
        torch.manual_seed(seed)
        reference = Encoder("r3d_tiny", TINY["projection_hidden"], TINY["projection_dim"])
        assert torch.equal(features_of(source.encoder), features_of(reference))
        assert source.random_init == RandomInit(seed, runs / f"run{seed}" / "best.pt")
        assert source.random_init.description() == (
            f"random-init encoder with run{seed}'s architecture and clip settings, seed {seed}")
        assert Path(source.description).parent.name.startswith(f"random-r3d_tiny-seed{seed}-")
        assert load_checkpoint(Path(source.description))["config"] == {**TINY, "seed": seed}
    assert not torch.allclose(features_of(found[3].encoder), features_of(found[11].encoder))
    chosen = source_of(settings, workspace, run_dir=runs / "run3", random_init=True,
                       random_init_seed=5, stage="retrieval")
    torch.manual_seed(5)
    reference = Encoder("r3d_tiny", TINY["projection_hidden"], TINY["projection_dim"])
    assert torch.equal(features_of(chosen.encoder), features_of(reference))
    assert chosen.random_init.seed == 5 and "run3's" in chosen.random_init.description()


def test_a_trained_source_is_no_baseline_and_says_so_in_summaries(tmp_path):
    workspace = WorkspaceConfig(root=str(tmp_path))
    run = tmp_path / "synthetic" / "runs" / "r"
    save_seeded_run(run, 3)
    assert source_of(PretrainConfig(**TINY), workspace, run_dir=run,
                     stage="retrieval").random_init is None
    assert baseline_summary(None) == {"random_init": None, "random_init_seed": None}
    alone = RandomInit(4)
    assert baseline_summary(alone) == {
        "random_init": "random-init encoder with pretrain.* architecture and clip settings, "
                       "seed 4", "random_init_seed": 4}
    loose = RandomInit(4, tmp_path / "elsewhere.pt")  # a checkpoint outside any run folder
    assert f"with {tmp_path / 'elsewhere.pt'}'s architecture" in loose.description()
