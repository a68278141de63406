"""A run's training curves as figures that stand alone: a title, axis labels with units,
human names in the legend, every evaluation drawn as a point on an axis spanning the run.

`CURVES` names each figure and the metrics.jsonl keys it draws; `curve_figure` builds one;
`other_keys` lists the numeric keys no curve draws (collapse measures, for example), so a
report can still show them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stages.io.figures import fixed_margins, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Series:
    """One metrics.jsonl key and its name in a legend."""

    key: str
    label: str


@dataclass(frozen=True)
class Panel:
    """One y axis. `share` axes run at least from 0 to 1; `count` axes have whole-number
    ticks; both `count` and `spread` axes turn logarithmic when the values span more than a
    factor of 20."""

    ylabel: str
    series: tuple[Series, ...]
    share: bool = False
    count: bool = False
    spread: bool = False


@dataclass(frozen=True)
class Curve:
    """One figure: `name` is its PNG file in the run folder."""

    name: str
    title: str
    panels: tuple[Panel, ...]

    @property
    def keys(self) -> list[str]:
        """Every metrics.jsonl key the figure draws, panel by panel."""
        return [s.key for panel in self.panels for s in panel.series]


CURVES: tuple[Curve, ...] = (
    Curve("loss.png", "Training loss (mean over the epoch's steps)", (
        Panel("loss (cosine-distance hinge)", (
            Series("loss", "total"), Series("triplet_loss", "triplet (margin m1)"),
            Series("temporal_loss", "temporal (margin m2)"))),)),
    Curve("recall.png", "Test-to-train kNN retrieval (centre clip)", (
        Panel("recall (share of queries)", (
            Series("r1", "R@1, test queries"), Series("r5", "R@5, test queries"),
            Series("val_r1", "R@1, validation queries")), share=True),)),
    Curve("clusters.png", "Pseudo-label clusters of each clustering round", (
        Panel("clusters (count)", (Series("num_clusters", "clusters used as pseudo-labels"),),
              count=True),
        Panel("agreement with true classes", (
            Series("nmi", "NMI"), Series("ami", "AMI"),
            Series("cluster_fp_rate", "same-cluster pairs of different classes")),
              share=True))),
    Curve("rates.png", "Mined triplets that contradict the true classes", (
        Panel("share of labelled triplets", (
            Series("positive_fp_rate", "positive of another class (false positive)"),
            Series("negative_fn_rate", "negative of the same class (false negative)")),
              share=True),)),
    Curve("collapse.png", "Embedding collapse measures", (
        Panel("cosine similarity", (Series("mean_cosine", "mean pairwise cosine"),)),
        Panel("Wang & Isola (2020)", (Series("alignment", "alignment (lower is better)"),
                                      Series("uniformity", "uniformity (lower is better)"))),
        Panel("effective rank (dimensions)", (Series("effective_rank", "effective rank"),)))),
    Curve("mining.png", "Triplet mining", (
        Panel("triplets per step (count)", (Series("triplets_per_step", "triplets"),),
              count=True),
        Panel("share of triplets", (
            Series("fallback_rate", "negative from the hardest-negative fallback"),),
              share=True))),
    Curve("speed.png", "Schedule and throughput", (
        Panel("learning rate", (Series("lr", "learning rate (last step)"),)),
        Panel("clips per second", (Series("clips_per_second", "training clips per second"),)),
        Panel("GPU memory (GiB)", (Series("gpu_peak_gib", "peak allocated"),)))),
    Curve("time.png", "Where an epoch's time goes", (
        Panel("seconds", (
            Series("seconds", "training steps"), Series("embed_seconds", "embedding for the "
                                                        "clustering round"),
            Series("cluster_seconds", "clustering"), Series("quality_seconds", "scoring the "
                                                            "clusters"),
            Series("broadcast_seconds", "sharing labels between processes")), spread=True),)),
)

# Bookkeeping keys that are not measures of the run.
NOT_PLOTTED = {"epoch", "final", "ranks_agree", "table"}


def points(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(epoch, value) of every record with a finite number under `key`."""
    return [(r["epoch"], float(r[key])) for r in records
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
            and math.isfinite(r[key])]


def other_keys(records: list[dict[str, Any]]) -> list[str]:
    """Numeric keys of `records` that no curve draws, in first-seen order."""
    drawn = {key for curve in CURVES for key in curve.keys} | NOT_PLOTTED
    found: dict[str, None] = {}
    for record in records:
        for key in record:
            if key not in drawn and points([record], key):
                found[key] = None
    return list(found)


def curve_figure(records: list[dict[str, Any]], curve: Curve) -> Figure | None:
    """The figure of `curve` for the records that have its keys; None when none has."""
    from matplotlib.ticker import MaxNLocator

    panels = [(panel, [(s, points(records, s.key)) for s in panel.series])
              for panel in curve.panels]
    panels = [(panel, [(s, p) for s, p in found if p]) for panel, found in panels]
    panels = [(panel, found) for panel, found in panels if found]
    if not panels:
        return None
    epochs = [r["epoch"] for r in records if isinstance(r.get("epoch"), int)]
    figure = new_figure(6.0, 1.0 + 2.4 * len(panels), fitted=False)
    axes_list = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (panel, found) in zip(axes_list, panels):
        _draw_panel(axes, panel, found)
    first, last = min(epochs), max(max(epochs), min(epochs) + 1)
    axes_list[-1].set_xlabel("epoch")
    axes_list[-1].set_xlim(first - 0.5, last + 0.5)
    axes_list[-1].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=2))
    figure.suptitle(curve.title, fontsize=11)
    fixed_margins(figure)
    return figure


def _draw_panel(axes: Any, panel: Panel, found: list[tuple[Series, list[tuple[int, float]]]]
                ) -> None:
    from matplotlib.ticker import MaxNLocator

    values = [v for _, p in found for _, v in p]
    for series, series_points in found:
        epochs, ys = zip(*series_points)
        axes.plot(epochs, ys, marker="o" if len(series_points) < 40 else None, markersize=4,
                  label=series.label)
    if panel.share:
        axes.set_ylim(min(0.0, min(values) - 0.05), max(1.0, max(values)) + 0.05)
    elif (panel.count or panel.spread) and min(values) > 0 and max(values) / min(values) > 20:
        axes.set_yscale("log")
    elif panel.count:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(panel.ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")


def key_figure(records: list[dict[str, Any]], key: str) -> Figure | None:
    """A plain figure of one key without a curve of its own (named as in metrics.jsonl)."""
    return curve_figure(records, Curve(f"{key}.png", f"{key} (as logged in metrics.jsonl)",
                                       (Panel(key, (Series(key, key),)),)))
