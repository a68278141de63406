"""Options shared by the commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.runtime.choices import DATASET_LAYOUTS, LABEL_SOURCES

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="YAML config file (see example.yaml).")
]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override any config key: section.key=value (repeatable)."),
]
WorkspaceOption = Annotated[
    Optional[str], typer.Option(help="Workspace folder [config workspace.root, default slic-work].")
]
DatasetOption = Annotated[
    Optional[str],
    typer.Option(help=f"Dataset layout: {', '.join(DATASET_LAYOUTS)} [data.dataset]."),
]
RootOption = Annotated[
    Optional[str], typer.Option(help="Folder holding the dataset's videos and lists [data.root].")
]
LabelsOption = Annotated[
    Optional[str],
    typer.Option(help=f"Where classes come from: {', '.join(LABEL_SOURCES)} (none: every video "
                      "unlabelled, any tree) [data.labels]."),
]
NameOption = Annotated[
    Optional[str], typer.Option(help="Workspace folder name of the dataset [data.name].")
]
SplitOption = Annotated[Optional[int], typer.Option(help="Official split 1, 2 or 3 [data.split].")]
WorkersOption = Annotated[
    Optional[str], typer.Option(help="Parallel worker processes, or auto (the default: one "
                                     "for every core this process may use).")
]
LoaderWorkersOption = Annotated[
    Optional[str], typer.Option(help="DataLoader worker processes, or auto (the default).")
]
ShardOption = Annotated[
    Optional[str],
    typer.Option(help="Process only shard i/n (0-based) of the videos; under torchrun, "
                      "RANK/WORLD_SIZE set it. The last shard to finish merges."),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Redo the work even if cached.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result summary as one JSON object on stdout.")
]
RunOption = Annotated[
    Optional[Path], typer.Option("--run", help="Run folder [the latest run of the dataset].")
]
CheckpointOption = Annotated[
    Optional[Path],
    typer.Option(help="A checkpoint (best.pt, checkpoint.pt) instead of a run folder."),
]
RandomInitOption = Annotated[
    bool, typer.Option("--random-init", help="The baseline: an untrained encoder with the "
                       "architecture, clip settings and seed of the run it is compared with "
                       "(--run, --checkpoint, else the latest run; pretrain.* when there is "
                       "none); --set pretrain.seed=S draws it under another seed.")
]
CrossOption = Annotated[
    Optional[str],
    typer.Option(help="Evaluate on this dataset's frames (e.g. hmdb51) with a model pretrained "
                      "on another."),
]
DeviceOption = Annotated[
    Optional[str],
    typer.Option(help="auto, cpu, cuda or cuda:N; CUDA where there is none is an error "
                      "[compute.device]."),
]
AmpOption = Annotated[
    Optional[str],
    typer.Option(help="Mixed precision: auto, bf16, fp16 or off [compute.amp]."),
]
