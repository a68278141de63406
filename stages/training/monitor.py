"""A run's record: one JSON line per epoch in metrics.jsonl, and PNG plots drawn from it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

PLOTS: dict[str, tuple[str, list[str]]] = {
    "loss.png": ("training loss", ["loss", "triplet_loss", "temporal_loss"]),
    "recall.png": ("test-to-train kNN recall (centre clip)", ["r1", "r5", "val_r1"]),
    "clusters.png": ("pseudo-labels against true classes", ["nmi", "ami"]),
    "rates.png": ("mined triplets: false-positive / false-negative rate",
                  ["positive_fp_rate", "negative_fn_rate"]),
}


class MetricsLog:
    """metrics.jsonl of a run folder: read, truncate to an epoch (on resume), append."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
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
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def draw_plots(records: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Draw every metric present in `records` against epoch; returns the PNGs written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    written = []
    for name, (title, keys) in PLOTS.items():
        series = {key: [(r["epoch"], r[key]) for r in records
                        if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
                  for key in keys}
        series = {key: points for key, points in series.items() if points}
        if not series:
            continue
        figure, axes = pyplot.subplots(figsize=(5, 3.2), dpi=100)
        for key, points in series.items():
            epochs, values = zip(*points)
            axes.plot(epochs, values, marker="o" if len(points) < 30 else None, label=key)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        temporary = folder / f".{name}.writing.png"
        figure.savefig(temporary)
        pyplot.close(figure)
        os.replace(temporary, folder / name)
        written.append(folder / name)
    return written
