"""Per-class recall: which classes retrieval gets right (the per-class R@1 table)."""

from __future__ import annotations

import numpy as np


def per_class_recall(query_labels: np.ndarray, neighbour_labels: np.ndarray, k: int,
                     class_names: list[str]) -> list[dict[str, object]]:
    """R@k of the queries of each class. `neighbour_labels` (Q, K >= k)."""
    hits = (neighbour_labels[:, :k] == query_labels[:, None]).any(axis=1)
    rows = []
    for label in np.unique(query_labels):
        mine = query_labels == label
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        rows.append({"class": name, "queries": int(mine.sum()),
                     f"r{k}": float(hits[mine].mean())})
    return rows
