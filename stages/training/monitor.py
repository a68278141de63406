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
from stages.training.curves import CURVES, curve_figure
from stages.training.loggers import NullLogger, RunLogger


class MetricsLog:
    """metrics.jsonl of a run folder: read, truncate to an epoch (on resume), append; each
    appended record also goes to `mirror`."""

    def __init__(self, path: Path, mirror: RunLogger | None = None) -> None:
        self.path = path
        self.mirror = mirror or NullLogger()

    def records(self) -> list[dict[str, Any]]:
        """Every record of metrics.jsonl, in order ([] when the file does not exist)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def keep_before(self, epoch: int) -> None:
        """Drop the records of `epoch` and later (work a resumed run will redo)."""
        kept = [r for r in self.records() if r["epoch"] < epoch]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        temporary = self.path.with_name(f".{self.path.name}.writing")
        temporary.write_text(text)
        os.replace(temporary, self.path)

    def append(self, record: dict[str, Any]) -> None:
        """Append `record` as one line, fsynced so a kill keeps it, then pass it to the mirror."""
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.mirror.log_epoch(record)


def draw_plots(records: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Draw every curve with data in `records` as a PNG in `folder`; returns those written."""
    written = []
    for curve in CURVES:
        figure = curve_figure(records, curve)
        if figure is not None:
            written.append(save_png(figure, folder / curve.name))
    return written
