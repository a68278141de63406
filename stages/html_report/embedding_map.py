"""A 2-D map of per-video embeddings: their first two principal components (cheap, exact and
deterministic, with no dependency beyond numpy), coloured by true class (where known) and by
cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stages.io.figures import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Above this many colours a legend would hide the map; the colours still separate groups.
MAX_LEGEND_ENTRIES = 12


def principal_components(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> the (N, 2) coordinates on the first two principal axes of the
    L2-normalised rows (the geometry retrieval uses), and the (2,) share of the variance
    each axis explains. Signs are fixed so the result is reproducible."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    centred = unit - unit.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    axes = axes[:2] * np.sign(axes[:2, [0]] + (axes[:2, [0]] == 0))
    coordinates = np.zeros((len(features), 2))
    coordinates[:, :len(axes)] = centred @ axes.T
    variance = singular**2
    shares = np.zeros(2)
    shares[:len(axes)] = variance[:2] / max(variance.sum(), 1e-12)
    return coordinates, shares


def _scatter(axes: object, points: np.ndarray, groups: np.ndarray, names: dict[int, str],
             title: str) -> None:
    from matplotlib import colormaps

    palette = colormaps["tab20" if len(names) > 10 else "tab10"]
    for index, (group, name) in enumerate(sorted(names.items())):
        chosen = groups == group
        colour = "#999999" if group < 0 else palette(index % palette.N)
        axes.scatter(points[chosen, 0], points[chosen, 1], s=14, color=colour,
                     label=f"{name} ({int(chosen.sum())})", alpha=0.8, linewidths=0)
    axes.set_title(title, fontsize=10)
    if len(names) <= MAX_LEGEND_ENTRIES:
        axes.legend(fontsize=7, loc="best", markerscale=1.2)
    else:
        axes.text(0.01, 0.01, f"{len(names)} groups, colours repeat", fontsize=7,
                  transform=axes.transAxes)


def embedding_figure(features: np.ndarray, labels: np.ndarray, class_names: list[str],
                     clusters: np.ndarray, description: str) -> Figure:
    """The PCA map coloured by true class (`labels` (N,), -1 unknown) and by cluster
    (`clusters` (N,), -1 not clustered); where no label is known (an unlabelled collection),
    by cluster alone."""
    points, shares = principal_components(features)
    labelled = bool((np.asarray(labels) >= 0).any())
    figure = new_figure(11.0 if labelled else 6.0, 5.2)
    panels = list(np.atleast_1d(figure.subplots(1, 2 if labelled else 1, sharex=True,
                                                sharey=True)))
    by_cluster = panels[-1]
    if labelled:
        class_groups = {int(c): (class_names[c] if 0 <= c < len(class_names) else "unknown")
                        for c in np.unique(labels)}
        _scatter(panels[0], points, labels, class_groups, "coloured by true class")
    cluster_groups = {int(c): ("not clustered" if c < 0 else f"cluster {c}")
                      for c in np.unique(clusters)}
    _scatter(by_cluster, points, clusters, cluster_groups, "coloured by cluster (pseudo-label)")
    for axes in panels:
        axes.set_xlabel(f"principal component 1 ({shares[0]:.0%} of variance)")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel(f"principal component 2 ({shares[1]:.0%} of variance)")
    figure.suptitle(f"{len(features)} videos: {description}", fontsize=11)
    return figure
