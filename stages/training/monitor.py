"""A run's record: one JSON line per epoch in metrics.jsonl, and PNG plots drawn from it.

metrics.jsonl is the source of truth; a `RunLogger` (TensorBoard, for example) may mirror
each record as it is appended.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stages.io.figures import save_png
from stages.runtime.errors import ArtifactError
from stages.training.curves import CURVES, curve_figure
from stages.training.loggers import NullLogger, RunLogger


class MetricsLog:
    """metrics.jsonl of a run folder: read, truncate to an epoch (on resume), append; each
    appended record also goes to `mirror`."""

    def __init__(self, path: Path, mirror: RunLogger | None = None) -> None:
        self.path = path
        self.mirror = mirror or NullLogger()
        self.partial_line: int | None = None  # set by `records`: a last line cut short

    def records(self) -> list[dict[str, Any]]:
        """Every record of metrics.jsonl, in order ([] when the file does not exist).

        A last line with no newline that is not JSON is what a kill or a full disk leaves
        in the middle of an append: it is left out (and its number kept in `partial_line`);
        a damaged line anywhere else is an ArtifactError."""
        if not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        found = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                found.append(record)
            elif number == len(lines) and not text.endswith("\n"):
                self.partial_line = number
            else:
                raise ArtifactError(f"{self.path} line {number} is not an epoch's record: the "
                                    "file is damaged; start the run over with --force")
        return found

    def keep_before(self, epoch: int) -> str | None:
        """Drop the records of `epoch` and later (work a resumed run will redo), and a
        partial last line; returns a note for the user when there was one."""
        kept = [r for r in self.records() if r["epoch"] < epoch]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        temporary = self.path.with_name(f".{self.path.name}.writing")
        temporary.write_text(text)
        os.replace(temporary, self.path)
        if self.partial_line is None:
            return None
        return (f"note: {self.path} ended in a line cut short (line {self.partial_line}: a "
                "kill or a full disk during a write); it was dropped")

    def append(self, record: dict[str, Any]) -> None:
        """Append `record` as one line in one write (O_APPEND: whole or, on a full disk, cut
        short, which `records` recognises), fsynced so a kill keeps it, then pass it on to
        the mirror."""
        line = (json.dumps(record) + "\n").encode()
        handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(handle, line)
            os.fsync(handle)
        finally:
            os.close(handle)
        self.mirror.log_epoch(record)


def draw_plots(records: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Draw every curve with data in `records` as a PNG in `folder`; returns those written."""
    written = []
    for curve in CURVES:
        figure = curve_figure(records, curve)
        if figure is not None:
            written.append(save_png(figure, folder / curve.name))
    return written
