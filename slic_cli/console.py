"""Terminal output: rich progress on stderr, summary tables, JSON, and one-line errors."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from stages.io.space import disk_full_cause, disk_full_message
from stages.runtime.errors import SlicError

# Piped or redirected, rich would cut tables at 80 columns ("ucfTrainTes…"); a file or
# another program gets them whole.
PIPED_WIDTH = 200
stderr = Console(stderr=True)
stdout = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)


def command_line() -> str:
    """The command as the user typed it, for provenance."""
    return " ".join(shlex.quote(a) for a in ["slic", *sys.argv[1:]])


# Running epoch tables, by the "table" key of a row: title, record key, width, format.
ROW_TABLES = {
    "pretrain": (("epoch", "epoch", 5, "d"), ("loss", "loss", 8, ".4f"),
                 ("triplet", "triplet_loss", 8, ".4f"), ("temporal", "temporal_loss", 9, ".4f"),
                 ("clusters", "num_clusters", 9, "d"), ("NMI", "nmi", 6, ".3f"),
                 ("pos FP", "positive_fp_rate", 7, ".3f"),
                 ("neg FN", "negative_fn_rate", 7, ".3f"), ("R@1", "r1", 6, ".3f"),
                 ("R@5", "r5", 6, ".3f"), ("cos", "mean_cosine", 6, ".3f"),
                 ("clips/s", "clips_per_second", 8, ".1f")),
    "finetune": (("epoch", "epoch", 5, "d"), ("loss", "loss", 9, ".4f"),
                 ("val top-1", "val_top1", 10, ".3f"), ("lr", "lr", 10, ".2e")),
}
ROW_TABLES["linear-probe"] = ROW_TABLES["finetune"]


class RichProgress:
    """The stages' `Progress` protocol drawn as rich progress bars on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, disable=quiet,
        )
        self.task: TaskID | None = None
        self.table_shown: str | None = None
        self.started = False

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.bars.stop()

    def start(self, description: str, total: int) -> None:
        # The live display starts with the first bar: a command that stops earlier (a user
        # mistake) prints its one error line and nothing else.
        if not self.started:
            self.bars.start()
            self.started = True
        self.task = self.bars.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.bars.advance(self.task, steps)

    def message(self, text: str) -> None:
        if not self.quiet:
            self.bars.console.print(f"[yellow]note:[/] {text}", markup=True, highlight=False)

    def finish(self) -> None:
        if self.task is not None:
            self.bars.remove_task(self.task)
        self.task = None

    def row(self, values: dict[str, Any]) -> None:
        """Print one row of the running epoch table (columns fixed, blanks where absent)."""
        if self.quiet:
            return
        name = values.get("table", "pretrain")
        columns = ROW_TABLES[name]
        if self.table_shown != name:
            self.bars.console.print(
                "".join(f"{title:>{width}}" for title, _, width, _ in columns),
                style="bold", highlight=False)
            self.table_shown = name
        cells = []
        for _, key, width, form in columns:
            value = values.get(key)
            text = "final" if key == "epoch" and values.get("final") else (
                "" if value is None else format(value, form))
            cells.append(f"{text:>{width}}")
        self.bars.console.print("".join(cells), highlight=False)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake (SlicError) into one line on stderr and exit code 2."""
    try:
        yield
    except SlicError as error:
        message = " ".join(str(error).split())
        stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/]: finished videos are kept; run again to resume")
        raise typer.Exit(130) from None
    except Exception as error:
        full = disk_full_cause(error)
        if full is None:
            raise
        stderr.print(f"[bold red]error:[/] {disk_full_message(full)}", highlight=False,
                     soft_wrap=True)
        raise typer.Exit(2) from None


def key_value_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def failures_table(failures: list[dict[str, str]], limit: int = 20) -> Table:
    table = Table(title=f"failed videos ({len(failures)})", title_justify="left")
    table.add_column("video")
    table.add_column("reason", style="red")
    for failure in failures[:limit]:
        table.add_row(failure["relpath"], failure["reason"])
    if len(failures) > limit:
        table.add_row(f"... {len(failures) - limit} more", "see slic inspect --json")
    return table


def emit(summary: dict[str, Any], as_json: bool, quiet: bool, tables: list[Table]) -> None:
    """Print a stage's result: one JSON object on stdout, or its tables (unless quiet)."""
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    elif not quiet:
        for table in tables:
            stdout.print(table)
