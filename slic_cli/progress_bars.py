"""The stages' progress drawn with rich on stderr: bars for long loops, and running tables
for epoch rows. Imported only by commands that run a stage, so `--help` and `inspect` do
not load rich's progress machinery."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from slic_cli.console import labelled, stderr, visible

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
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
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
        self.task = self.bars.add_task(visible(description), total=total)

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.bars.advance(self.task, steps)

    def message(self, text: str) -> None:
        if not self.quiet:
            self.bars.console.print(labelled("note:", "yellow", text), highlight=False)

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
