"""`slic`: one command per pipeline stage, each reading and writing HDF5 artifacts."""

# No `from __future__ import annotations`: Typer reads the commands' annotations at start-up,
# and evaluating them as strings costs more than the rest of `slic --help`.
import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import click
import typer

from slic_cli.console import (
    emit,
    failures_table,
    key_value_table,
    stdout,
    stop_on_sigterm,
    user_errors,
    warnings_tables,
)
from slic_cli.inspect_view import (
    demo_files_table,
    demo_table,
    demo_times_table,
    inspect_tables,
    neighbours_table,
    partitions_table,
    per_class_table,
)
from slic_cli.options import (
    AmpOption,
    CheckpointOption,
    ConfigOption,
    CrossOption,
    DatasetOption,
    DeviceOption,
    ForceOption,
    JsonOption,
    LabelsOption,
    LoaderWorkersOption,
    NameOption,
    QuietOption,
    RandomInitOption,
    RootOption,
    RunOption,
    SetOption,
    ShardOption,
    SplitOption,
    WorkersOption,
    WorkspaceOption,
)
from slic_cli.share_commands import export_command, report_command
from slic_cli.stage_runner import run_stage
from stages.models.registry import ARCHITECTURES
from stages.runtime.choices import MADE_DATASETS

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="slic",
    help="SLIC video self-supervised learning, as stages that read and write HDF5 artifacts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help text: option help names its config key in brackets, which rich markup would eat.
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        import stages

        stdout.print(f"slic {stages.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print slic's version and exit.")] = False) -> None:
    """SLIC video self-supervised learning, as stages that read and write HDF5 artifacts."""


def _shared(dataset: str | None, root: str | None, name: str | None, split: int | None,
            workspace: str | None) -> dict[str, Any]:
    return {"data.dataset": dataset, "data.root": root, "data.name": name, "data.split": split,
            "workspace.root": workspace}


def _learning_options(section: str, dataset: str | None, name: str | None,
                      split: int | None, workspace: str | None, workers: str | None,
                      device: str | None, amp: str | None) -> dict[str, Any]:
    """The options every learning stage shares, as dotted config keys of `section`."""
    return {**_shared(dataset, None, name, split, workspace), f"{section}.workers": workers,
            "compute.device": device, "compute.amp": amp}


def _video_stage_tables(summary: dict[str, Any]) -> list:
    """The summary table of a data stage, then its failed and its truncated videos (each
    truncated one with its note: how many frames it decoded and why it stopped)."""
    rows = {key: summary[key] for key in ("output", "status", "shard", "num_videos", "reused",
                                          "processed", "num_failed", "num_missing",
                                          "num_images", "bytes", "seconds")}
    rows["truncated"] = summary["num_truncated"]
    tables = [key_value_table(summary["stage"], rows)]
    if summary["failures"]:
        tables.append(failures_table(summary["failures"]))
    if summary["truncated"]:
        notes = failures_table([{"relpath": t["relpath"], "reason": t["note"]}
                                for t in summary["truncated"]])
        notes.title = f"truncated videos ({len(summary['truncated'])}), kept"
        tables.append(notes)
    return tables


def _random_init_seed(resolved: Any, set_items: list[str] | None) -> int | None:
    """The seed of a random-init baseline where `--set pretrain.seed=S` chose one; None: the
    seed the compared run was trained with (a config file's pretrain.seed is that of the runs
    it trains, not a choice for the baseline)."""
    from stages.runtime.layers import set_keys

    return resolved.pretrain.seed if "pretrain.seed" in set_keys(set_items) else None


def _summary_rows(summary: dict[str, Any], *lists: str) -> dict[str, Any]:
    """`summary` less its `lists` (shown as tables of their own, or in --json only) and the
    random-init keys of a trained encoder (None)."""
    return {key: value for key, value in summary.items() if key not in lists
            and not (key.startswith("random_init") and value is None)}


def _classifier_stage(stage: Any, what: str, *, run: Path | None, checkpoint: Path | None,
                      random_init: bool, cross: str | None, resume: bool,
                      set_items: list[str] | None) -> tuple[Any, Any]:
    """The stage call and the summary table of linear-probe or finetune (`stage`, whose config
    section shares its module's name): both evaluate the encoder of `run`, `checkpoint` or
    `random_init` in the same way."""
    section = stage.__name__.rsplit(".", 1)[-1]

    def call(resolved: Any, context: Any) -> Any:
        return stage.run(getattr(resolved, section), resolved.data, resolved.workspace,
                         pretrain=resolved.pretrain, context=context, run_dir=run,
                         checkpoint=checkpoint, random_init=random_init, cross=cross,
                         resume=resume, compute_settings=resolved.compute,
                         random_init_seed=_random_init_seed(resolved, set_items))

    def tables(summary: dict[str, Any]) -> list:
        return [key_value_table(f"{what} of {summary['random_init'] or summary['encoder']}",
                                _summary_rows(summary, "per_class", "confusion",
                                              "class_names", "warnings")),
                *warnings_tables(summary["warnings"])]

    return call, tables


@app.command("make-dataset")
def make_dataset_command(
    kind: Annotated[str, typer.Argument(
        help=f"Dataset to make: {', '.join(MADE_DATASETS)}.")] = "synthetic",
    out: Annotated[Path, typer.Option(help="Folder to write (UCF101 layout).")] = Path(
        "synthetic-data"),
    seed: Annotated[Optional[int], typer.Option(help="Seed [make_dataset.seed].")] = None,
    num_classes: Annotated[Optional[int], typer.Option(help="Motion classes (2-10).")] = None,
    force: ForceOption = False, config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """Write the built-in demo dataset: real videos whose classes differ only by motion."""
    from stages import make_dataset  # each command imports only what it runs

    run_stage(lambda resolved, context: make_dataset.run(
        resolved.make_dataset, out, kind=kind, context=context),
        lambda summary: [key_value_table("make-dataset", summary)],
        config=config, options={"make_dataset.seed": seed,
                                "make_dataset.num_classes": num_classes},
        set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("extract-frames")
def extract_frames_command(
    dataset: DatasetOption = None, root: RootOption = None, labels: LabelsOption = None,
    name: NameOption = None, split: SplitOption = None, workspace: WorkspaceOption = None,
    out: Annotated[Optional[Path], typer.Option(help="Output file [<workspace>/<name>/frames.h5].")
                   ] = None,
    short_side: Annotated[Optional[int], typer.Option(help="Short side in pixels.")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Resample to this frame rate.")] = None,
    codec: Annotated[Optional[str], typer.Option(help="jpeg, png or raw.")] = None,
    workers: WorkersOption = None, shard: ShardOption = None, force: ForceOption = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """Decode every video of a dataset, resize it, and store all frames in one frames.h5."""
    from stages import extract_frames
    from stages.per_video.jobs import Shard

    run_stage(lambda resolved, context: extract_frames.run(
        resolved.extract_frames, resolved.data, resolved.workspace, context=context, out=out,
        shard=Shard.parse(shard)), _video_stage_tables,
        config=config, options={
            **_shared(dataset, root, name, split, workspace), "data.labels": labels,
            "extract_frames.short_side": short_side, "extract_frames.fps": fps,
            "extract_frames.codec": codec, "extract_frames.workers": workers},
        set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("compute-flow")
def compute_flow_command(
    dataset: DatasetOption = None, name: NameOption = None, workspace: WorkspaceOption = None,
    frames: Annotated[Optional[Path], typer.Option(
        help="Input frames.h5 [<workspace>/<name>/frames.h5].")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output file [<workspace>/<name>/flow.h5].")
                   ] = None,
    method: Annotated[Optional[str], typer.Option(
        help="dis, farneback, tvl1 (PyTorch) or tvl1-opencv (needs opencv-contrib-python) "
             "[compute_flow.method].")] = None,
    bound: Annotated[Optional[float], typer.Option(help="Clip flow to +-bound pixels.")] = None,
    device: DeviceOption = None,
    workers: WorkersOption = None, shard: ShardOption = None, force: ForceOption = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """Dense optical flow between consecutive frames of frames.h5, stored as uint8 u and v."""
    from stages import compute_flow
    from stages.per_video.jobs import Shard

    run_stage(lambda resolved, context: compute_flow.run(
        resolved.compute_flow, resolved.data, resolved.workspace, context=context,
        frames=frames, out=out, shard=Shard.parse(shard), compute_settings=resolved.compute),
        _video_stage_tables,
        config=config, options={
            **_shared(dataset, None, name, None, workspace),
            "compute_flow.method": method, "compute_flow.bound": bound,
            "compute_flow.workers": workers, "compute.device": device},
        set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("cluster")
def cluster_command(
    features: Annotated[Path, typer.Option(help="Features: slic's features.h5, or a .npz with "
                                           "'features' (N, D) and optional labels, split, "
                                           "video_ids, class_names.")],
    out: Annotated[Optional[Path], typer.Option(
        help="Output [FILE's name + .assignments.h5, beside FILE].")] = None,
    split: Annotated[Optional[str], typer.Option(help="train, test or all [cluster.split].")
                     ] = None,
    partition: Annotated[Optional[str], typer.Option(
        help="Pseudo-label partition: finest, coarsest or an index [cluster.partition].")] = None,
    num_clusters: Annotated[Optional[int], typer.Option(
        help="Pseudo-labels with exactly K clusters [cluster.num_clusters].")] = None,
    method: Annotated[Optional[str], typer.Option(
        help="finch or kmeans [cluster.method].")] = None,
    nn: Annotated[Optional[str], typer.Option(
        help="First neighbours: exact, ivf, hnsw or auto [cluster.nn].")] = None,
    force: ForceOption = False, config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """FINCH partitions of video features, and their quality against true labels."""
    from stages import cluster

    run_stage(lambda resolved, context: cluster.run(resolved.cluster, features, out=out,
                                                    context=context),
              lambda summary: [partitions_table(summary)],
              config=config, options={"cluster.split": split, "cluster.partition": partition,
                                      "cluster.num_clusters": num_clusters,
                                      "cluster.method": method, "cluster.nn": nn},
              set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("pretrain")
def pretrain_command(
    dataset: DatasetOption = None, name: NameOption = None, split: SplitOption = None,
    workspace: WorkspaceOption = None,
    frames: Annotated[Optional[Path], typer.Option(
        help="Input frames.h5 [<workspace>/<name>/frames.h5].")] = None,
    flow: Annotated[Optional[Path], typer.Option(
        help="Input flow.h5 [<workspace>/<name>/flow.h5].")] = None,
    run_name: Annotated[Optional[str], typer.Option(
        help="Run folder name [pretrain.run_name].")] = None,
    arch: Annotated[Optional[str], typer.Option(
        help=f"Backbone: {', '.join(ARCHITECTURES)} [pretrain.arch].")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs [pretrain.epochs].")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help="Items per step, all ranks together [pretrain.batch_size].")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate [pretrain.lr].")] = None,
    pseudo_labels: Annotated[Optional[str], typer.Option(
        help="finch, kmeans, none or labels [pretrain.pseudo_labels].")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed [pretrain.seed].")] = None,
    device: DeviceOption = None, amp: AmpOption = None,
    workers: LoaderWorkersOption = None,
    logger: Annotated[Optional[str], typer.Option(
        help="Also log to: none or tensorboard [pretrain.logger].")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run from its "
                                         "checkpoint.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start the run over, deleting its "
                                        "checkpoint.")] = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """SLIC self-supervised training with iterative FINCH clustering; torchrun-ready."""
    from stages import pretrain  # torch loads only for the commands that train

    run_stage(lambda resolved, context: pretrain.run(
        resolved.pretrain, resolved.data, resolved.workspace, context=context, frames=frames,
        flow=flow, resume=resume, compute_settings=resolved.compute),
        lambda summary: [key_value_table("pretrain", summary)],
        config=config, options={
            **_shared(dataset, None, name, split, workspace),
            "pretrain.run_name": run_name, "pretrain.arch": arch, "pretrain.epochs": epochs,
            "pretrain.batch_size": batch_size, "pretrain.lr": lr,
            "pretrain.pseudo_labels": pseudo_labels, "pretrain.seed": seed,
            "compute.device": device, "compute.amp": amp, "pretrain.workers": workers,
            "pretrain.logger": logger},
        set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("retrieve")
def retrieve_command(
    dataset: DatasetOption = None, name: NameOption = None, split: SplitOption = None,
    workspace: WorkspaceOption = None,
    run: RunOption = None, checkpoint: CheckpointOption = None,
    features: Annotated[Optional[Path], typer.Option(
        help="Evaluate these features (features.h5 or .npz with features, labels, split) "
             "instead of embedding videos.")] = None,
    k: Annotated[Optional[str], typer.Option(
        "--k", help="R@k for these k, comma-separated [retrieve.ks].")] = None,
    clips: Annotated[Optional[int], typer.Option(
        help="Clips per video [retrieve.clips].")] = None,
    feature: Annotated[Optional[str], typer.Option(
        help="projection or backbone [retrieve.feature].")] = None,
    cross: CrossOption = None,
    out: Annotated[Optional[Path], typer.Option(
        help="retrieval.h5 to write [<run>/retrieval/<dataset>-<feature>/, or for "
             "--features <workspace>/retrieval/<name>-<tag>/].")] = None,
    gallery: Annotated[Optional[Path], typer.Option(
        help="Write an HTML page of queries and their nearest videos here.")] = None,
    random_init: RandomInitOption = False,
    device: DeviceOption = None, amp: AmpOption = None,
    workers: LoaderWorkersOption = None, force: ForceOption = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """Test-to-train nearest-neighbour retrieval: R@k, per-class R@1, optional gallery."""
    from stages import retrieve  # torch loads only for the commands that embed

    run_stage(lambda resolved, context: retrieve.run(
        resolved.retrieve, resolved.data, resolved.workspace, context=context, run_dir=run,
        checkpoint=checkpoint, features=features, cross=cross, out=out, gallery=gallery,
        compute_settings=resolved.compute, random_init=random_init,
        pretrain=resolved.pretrain, random_init_seed=_random_init_seed(resolved, set_)),
        lambda summary: [key_value_table("retrieve",
                                         _summary_rows(summary, "per_class", "warnings")),
                         per_class_table(summary["per_class"]),
                         *warnings_tables(summary["warnings"])],
        config=config, options={
            **_shared(dataset, None, name, split, workspace), "retrieve.ks": k,
            "retrieve.clips": clips, "retrieve.feature": feature,
            "retrieve.workers": workers, "compute.device": device, "compute.amp": amp},
        set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("search")
def search_command(
    query: Annotated[list[str], typer.Option(
        help="A video file, a folder of videos, or a video id of the collection "
             "(repeatable).")],
    dataset: DatasetOption = None, name: NameOption = None, split: SplitOption = None,
    workspace: WorkspaceOption = None,
    run: RunOption = None, checkpoint: CheckpointOption = None,
    k: Annotated[int, typer.Option("--k", help="Neighbours per query.")] = 5,
    index: Annotated[str, typer.Option(
        help="auto (exact up to a size, faiss above), exact, hnsw or ivf.")] = "auto",
    gallery: Annotated[Optional[Path], typer.Option(
        help="Write an HTML page of the queries and their nearest videos here.")] = None,
    clips: Annotated[Optional[int], typer.Option(
        help="Clips per video [retrieve.clips].")] = None,
    feature: Annotated[Optional[str], typer.Option(
        help="projection or backbone [retrieve.feature].")] = None,
    device: DeviceOption = None, amp: AmpOption = None,
    workers: LoaderWorkersOption = None, force: ForceOption = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """Find the videos of a collection most like query videos (no labels needed)."""
    from stages import find_similar  # torch loads only for the commands that embed

    run_stage(lambda resolved, context: find_similar.run(
        resolved.retrieve, resolved.data, resolved.workspace, queries=query, k=k,
        method=index, context=context, run_dir=run, checkpoint=checkpoint, gallery=gallery,
        compute_settings=resolved.compute),
        lambda summary: [key_value_table("search", {
            key: summary[key] for key in ("features", "index", "index_outcome",
                                          "index_recall", "collection_size", "seconds")}),
                         neighbours_table(summary["queries"])],
        config=config, options={
            **_shared(dataset, None, name, split, workspace), "retrieve.clips": clips,
            "retrieve.feature": feature, "retrieve.workers": workers,
            "compute.device": device, "compute.amp": amp},
        set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("linear-probe")
def linear_probe_command(
    dataset: DatasetOption = None, name: NameOption = None, split: SplitOption = None,
    workspace: WorkspaceOption = None,
    run: RunOption = None, checkpoint: CheckpointOption = None,
    random_init: RandomInitOption = False,
    cross: CrossOption = None,
    protocol: Annotated[Optional[str], typer.Option(
        help="windows (the paper's code) or cached (fast) [linear_probe.protocol].")] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="Classifier epochs [linear_probe.epochs].")] = None,
    windows: Annotated[Optional[int], typer.Option(
        help="Test windows per video [linear_probe.windows].")] = None,
    crops: Annotated[Optional[int], typer.Option(
        help="Test crops per window: 1, 3 or 10 [linear_probe.crops].")] = None,
    device: DeviceOption = None, amp: AmpOption = None,
    workers: LoaderWorkersOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint "
                                         "(windows protocol).")] = False,
    force: ForceOption = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """Linear classifier on frozen backbone features: top-1/top-5, per class, confusion PNG."""
    from stages import linear_probe  # torch loads only for the commands that embed

    run_stage(*_classifier_stage(linear_probe, "linear probe", run=run, checkpoint=checkpoint,
                                 random_init=random_init, cross=cross, resume=resume,
                                 set_items=set_),
              config=config, options={
                **_learning_options("linear_probe", dataset, name, split, workspace, workers,
                                    device, amp),
                "linear_probe.protocol": protocol, "linear_probe.epochs": epochs,
                "linear_probe.windows": windows, "linear_probe.crops": crops},
              set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("finetune")
def finetune_command(
    dataset: DatasetOption = None, name: NameOption = None, split: SplitOption = None,
    workspace: WorkspaceOption = None,
    run: RunOption = None, checkpoint: CheckpointOption = None,
    random_init: RandomInitOption = False,
    cross: CrossOption = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="Epochs [finetune.epochs].")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help="Clips per step, all ranks together [finetune.batch_size].")] = None,
    crops: Annotated[Optional[int], typer.Option(
        help="Test crops per window: 1, 3 or 10 [finetune.crops].")] = None,
    windows: Annotated[Optional[int], typer.Option(
        help="Test windows per video [finetune.windows].")] = None,
    device: DeviceOption = None, amp: AmpOption = None,
    workers: LoaderWorkersOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint.")
                      ] = False,
    force: Annotated[bool, typer.Option("--force", help="Start over.")] = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """End-to-end fine-tuning for classification: top-1/top-5 on the test split."""
    from stages import finetune  # torch loads only for the commands that train

    run_stage(*_classifier_stage(finetune, "fine-tuning", run=run, checkpoint=checkpoint,
                                 random_init=random_init, cross=cross, resume=resume,
                                 set_items=set_),
              config=config, options={
                **_learning_options("finetune", dataset, name, split, workspace, workers,
                                    device, amp),
                "finetune.epochs": epochs, "finetune.batch_size": batch_size,
                "finetune.crops": crops, "finetune.windows": windows},
              set_items=set_, force=force, quiet=quiet, as_json=json_)


@app.command("demo")
def demo_command(
    workspace: Annotated[Path, typer.Option(help="Folder for the demo data and every "
                                            "artifact.")] = Path("slic-demo"),
    quick: Annotated[bool, typer.Option("--quick", help="A 1-2 minute version on a smaller "
                                        "dataset.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo every stage, even those whose "
                                        "results are up to date.")] = False,
    config: ConfigOption = None, set_: SetOption = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """The whole pipeline on built-in synthetic videos: SLIC against a random network."""
    from stages import demo  # torch loads only for the commands that train

    run_stage(lambda resolved, context: demo.run(resolved, workspace, quick=quick,
                                                 context=context),
              lambda summary: [demo_times_table(summary), demo_files_table(summary),
                               demo_table(summary)],
              config=config, options=None, set_items=set_, force=force, quiet=quiet,
              as_json=json_)


@app.command("inspect")
def inspect_command(
    file: Annotated[Path, typer.Argument(
        help="Any file slic wrote: an artifact (.h5), a checkpoint (.pt, read without "
             "unpickling) or a results.json.")],
    json_: JsonOption = False,
    videos: Annotated[bool, typer.Option(
        "--videos", help="Add the per-video table (frames, flow, features, assignments).")
    ] = False,
) -> None:
    """Show what a file holds: kind, provenance, counts, classes, failures; for a checkpoint,
    its epoch, architecture and parameter count."""
    from stages import inspect_artifact

    with user_errors():
        description = inspect_artifact.describe(file, videos)
        emit(description, json_, False, inspect_tables(description))


app.command("report")(report_command)
app.command("export")(export_command)


@app.command("config")
def config_command(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the resolved config (defaults, then --config, then --set) as YAML."""
    import yaml

    from stages.config import load_config

    with user_errors():
        resolved = load_config(config, None, set_)
        stdout.print(yaml.safe_dump(resolved.as_dict(), sort_keys=False), highlight=False)


_CONFIG_KEY = re.compile(r"\[([a-z_]+)\.([a-z_]+)\]")


def with_config_defaults(command: click.Command) -> click.Command:
    """`command` whose options' help names the config key they set ("[pretrain.epochs]")
    also shows that key's default ("[pretrain.epochs, default 600]"): the options default to
    None so that a config file can set them, which left --help with no default to show."""
    for sub in getattr(command, "commands", {}).values():
        with_config_defaults(sub)
    keyed = [(p, found) for p in command.params
             if (found := _CONFIG_KEY.search(getattr(p, "help", None) or "")) is not None]
    if not keyed:
        return command
    from stages.config import SECTIONS  # only for a help page that shows keys

    for parameter, found in keyed:
        section, key = found.groups()
        fields = ({f.name: f for f in dataclasses.fields(SECTIONS[section])}
                  if section in SECTIONS else {})
        if key in fields:
            default = fields[key].default
            default = "null" if default is None else default
            parameter.help = parameter.help.replace(found.group(0),
                                                    f"[{section}.{key}, default {default}]")
    return command


def main() -> None:
    stop_on_sigterm()
    command = typer.main.get_command(app)
    asked = sys.argv[1] if len(sys.argv) > 2 else None
    if asked in getattr(command, "commands", {}) and {"--help", "-h"} & set(sys.argv[2:]):
        with_config_defaults(command.commands[asked])  # the rest of the time: no config load
    command()
