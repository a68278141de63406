"""`slic report` and `slic export`: see a run on one page, and hand its weights to code that
does not know slic. Plain functions with Typer parameters, registered by `app.py`; the
library loads inside them, so `slic --help` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slic_cli.console import emit, key_value_table, user_errors
from slic_cli.options import JsonOption, QuietOption

RunArgument = Annotated[Path, typer.Argument(
    help="A run folder (<workspace>/<dataset>/runs/<run>, or a random-init baseline's "
         "folder).")]


def report_command(
    run: RunArgument,
    out: Annotated[Optional[Path], typer.Option(
        help="Where to write the page [<run>/report.html].")] = None,
    queries: Annotated[int, typer.Option(
        min=1, help="Test queries in the gallery, drawn evenly from the classes.")] = 12,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """One self-contained HTML page of a run: config and provenance, training curves,
    clusters across rounds, an embedding map, retrieval with a moving gallery, the linear
    probe and fine-tuning with confusion matrices. Opens offline in any browser."""
    from stages.report import write_report

    with user_errors():
        result = write_report(run, out, queries)
        summary = result.summary()
        emit(summary, json_, quiet, [key_value_table("report", {
            "page": summary["report"], "open in a browser": summary["open"],
            "sections": ", ".join(summary["sections"]), "size (bytes)": summary["bytes"],
            "seconds": summary["seconds"]})])


def export_command(
    run: Annotated[Path, typer.Argument(
        help="A run folder (its best.pt, else checkpoint.pt) or a checkpoint file.")],
    format_: Annotated[str, typer.Option(
        "--format", help="torchvision: a state dict that torchvision.models.video loads; "
                         "safetensors: the same tensors without pickle (the only "
                         "format for r3d_tiny).")] = "torchvision",
    out: Annotated[Optional[Path], typer.Option(
        help="Weights file to write [<run>/export/<arch>-backbone.pt or .safetensors]; "
             "its description goes beside it as <file>.json.")] = None,
    quiet: QuietOption = False, json_: JsonOption = False,
) -> None:
    """Write a run's backbone as weights other code loads without slic, with the Python that
    builds the matching torchvision model, checked to give the same features."""
    from stages.export import export  # torch loads only for the commands that need it

    with user_errors():
        result = export(run, format_, out)
        summary = result.summary()
        difference = summary["verified_max_difference"]
        emit(summary, json_, quiet, [key_value_table("export", {
            "weights": summary["weights"], "how to load them": summary["description"],
            "format": summary["format"], "arch": summary["arch"],
            "tensors": summary["tensors"], "size (bytes)": summary["bytes"],
            "check": "no torchvision counterpart to check against" if difference is None
            else f"torchvision features equal slic's (max difference {difference:.2e})"})])
