"""Classification measures: top-k accuracy of clip-averaged softmax, per class, confusion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


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
    rows = []
    for index, name in enumerate(class_names):
        total = int(matrix[index].sum())
        if total:
            rows.append({"class": name, "videos": total,
                         "accuracy": float(matrix[index, index] / total)})
    return rows


def draw_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """A PNG of the row-normalised confusion matrix."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.25 * len(class_names), 20)
    figure, axes = pyplot.subplots(figsize=(size, size), dpi=100)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    axes.set_yticks(ticks, class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.writing.png")
    figure.savefig(temporary)
    pyplot.close(figure)
    os.replace(temporary, path)
    return path
