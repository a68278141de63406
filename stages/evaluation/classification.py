"""Classification measures: top-k accuracy of clip-averaged softmax, per class, confusion."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stages.io.figures import new_figure, save_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Past this many classes the counts no longer fit in the cells; the colours still read.
MAX_CLASSES_WITH_COUNTS = 30


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose true label is among the k most probable. (N, C), (N,)."""
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, class_names: list[str]) -> list[dict[str, object]]:
    """One dict per class with test videos in the (C, C) `matrix` (row = true class): `class`,
    `videos` and `accuracy` (share on the diagonal). Classes without videos are left out."""
    rows = []
    for index, name in enumerate(class_names):
        total = int(matrix[index].sum())
        if total:
            rows.append({"class": name, "videos": total,
                         "accuracy": float(matrix[index, index] / total)})
    return rows


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str) -> Figure:
    """(C, C) counts (row = true class) drawn as shares of each row, with a colour bar, and the
    counts written in the cells while there are few enough classes to read them."""
    classes = len(class_names)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4.5 + 0.25 * classes, 20)
    figure = new_figure(size + 1.2, size)
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, shrink=0.8,
                    label="share of the true class's test videos")
    if classes <= MAX_CLASSES_WITH_COUNTS:
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                axes.text(column, row, str(count), ha="center", va="center", fontsize=9,
                          color="white" if shares[row, column] > 0.5 else "black")
    ticks, font = np.arange(classes), 9 if classes <= 20 else 7
    axes.set_xticks(ticks, class_names, rotation=90, fontsize=font)
    axes.set_yticks(ticks, class_names, fontsize=font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    counted = ", cells: video counts" if classes <= MAX_CLASSES_WITH_COUNTS else ""
    axes.set_title(f"{title}\n({int(matrix.sum())} test videos{counted})", fontsize=10)
    return figure


def draw_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """A PNG of `confusion_figure`."""
    return save_png(confusion_figure(matrix, class_names, title), path)
