"""How a run's pseudo-label clusters evolve across its clustering rounds: how many, how pure
against the true classes, and how the clusters of one round split and merge into the next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stages.io.artifacts import Assignments
from stages.io.figures import fixed_margins, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class RoundSummary:
    """One round's chosen partition. Scores are None without true labels; the transition
    counts are None for the first round. `kept` clusters of the previous round went whole
    into one cluster of this round, `split` ones spread over several; `merged` clusters of
    this round gather videos of several previous clusters."""

    epoch: int
    method: str
    chosen_from: str
    videos: int
    clusters: int
    largest_share: float
    singletons: int
    purity: float | None
    nmi: float | None
    ami: float | None
    kept: int | None = None
    split: int | None = None
    merged: int | None = None


def transitions(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int]:
    """(kept, split, merged) between two partitions (N,) of the same videos."""
    pairs = np.unique(np.stack([before, after], axis=1), axis=0)
    _, targets_per_cluster = np.unique(pairs[:, 0], return_counts=True)
    _, sources_per_cluster = np.unique(pairs[:, 1], return_counts=True)
    return (int((targets_per_cluster == 1).sum()), int((targets_per_cluster > 1).sum()),
            int((sources_per_cluster > 1).sum()))


def summarise_rounds(rounds: list[tuple[int, Assignments]]) -> list[RoundSummary]:
    """One summary per round, in epoch order."""
    summaries: list[RoundSummary] = []
    previous_rows: dict[str, int] | None = None  # video id -> row of the previous round
    previous_labels: np.ndarray | None = None
    for epoch, found in rounds:
        chosen = np.asarray(found.chosen, dtype=np.int64)
        sizes = np.bincount(chosen)
        sizes = sizes[sizes > 0]
        quality = found.quality[-1] if found.quality else {}
        summary = RoundSummary(epoch, found.method, found.chosen_from, len(chosen), len(sizes),
                               float(sizes.max() / len(chosen)), int((sizes == 1).sum()),
                               quality.get("purity"), quality.get("nmi"), quality.get("ami"))
        position = {str(v): i for i, v in enumerate(found.video_ids)}
        if previous_rows is not None and previous_labels is not None:
            shared = [v for v in previous_rows if v in position]
            if shared:
                summary.kept, summary.split, summary.merged = transitions(
                    previous_labels[[previous_rows[v] for v in shared]],
                    chosen[[position[v] for v in shared]])
        summaries.append(summary)
        previous_rows, previous_labels = position, chosen
    return summaries


def evolution_figure(summaries: list[RoundSummary]) -> Figure:
    """Clusters per round (log scale when they span a wide range) above their agreement
    with the true classes."""
    from matplotlib.ticker import MaxNLocator

    epochs = [s.epoch for s in summaries]
    figure = new_figure(6.0, 5.8, fitted=False)
    count_axes, score_axes = figure.subplots(2, 1, sharex=True)
    counts = [s.clusters for s in summaries]
    count_axes.plot(epochs, counts, marker="o", label="clusters")
    count_axes.plot(epochs, [s.singletons for s in summaries], marker="s", linestyle="--",
                    label="of them single videos")
    if max(counts) / max(min(counts), 1) > 20:
        count_axes.set_yscale("symlog")
    else:
        count_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    count_axes.set_ylabel("clusters (count)")
    for name in ("purity", "nmi", "ami"):
        values = [getattr(s, name) for s in summaries]
        if any(v is not None for v in values):
            score_axes.plot(epochs, [np.nan if v is None else v for v in values], marker="o",
                            label=name.upper() if name != "purity" else "purity")
    score_axes.plot(epochs, [s.largest_share for s in summaries], marker="^", linestyle=":",
                    label="largest cluster's share of videos")
    lowest = min([0.0, *(s.ami for s in summaries if s.ami is not None)])
    score_axes.set_ylim(lowest - 0.05, 1.05)
    score_axes.set_ylabel("share / score (0 to 1)")
    score_axes.set_xlabel("epoch of the clustering round")
    score_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (count_axes, score_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="best")
    figure.suptitle("Pseudo-label clusters across rounds (chosen partition)", fontsize=11)
    fixed_margins(figure)
    return figure
