"""Training curves that stand alone: units on the axes, human legends, the run's whole span."""

from __future__ import annotations

from stages.training.curves import CURVES, curve_figure, other_keys
from stages.training.monitor import draw_plots

RECORDS = [{"epoch": 0, "loss": 0.5, "lr": 0.1}, {"epoch": 1, "loss": 0.4, "lr": 0.1},
           {"epoch": 24, "loss": 0.1, "r1": 0.3, "r5": 0.6, "num_clusters": 40, "nmi": 0.5,
            "ranks_agree": True, "alignment_gap": 0.2},
           {"epoch": 25, "final": True, "num_clusters": 35, "nmi": 0.6, "ami": -0.05}]


def by_name(name: str):
    return next(curve for curve in CURVES if curve.name == name)


def test_one_recall_point_sits_on_an_axis_spanning_the_run():
    figure = curve_figure(RECORDS, by_name("recall.png"))
    axes = figure.axes[0]
    assert axes.get_xlim() == (-0.5, 25.5) and axes.get_xlabel() == "epoch"
    assert axes.get_ylabel() == "recall (share of queries)" and axes.get_ylim()[0] <= 0.0
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "R@1, test queries", "R@5, test queries"]


def test_the_cluster_figure_counts_clusters_and_keeps_negative_ami_in_view():
    figure = curve_figure(RECORDS, by_name("clusters.png"))
    counts, scores = figure.axes
    assert counts.get_ylabel() == "clusters (count)"
    assert list(counts.get_lines()[0].get_ydata()) == [40, 35]
    assert scores.get_ylim()[0] < -0.05
    assert curve_figure(RECORDS, by_name("rates.png")) is None  # nothing to draw


def test_keys_without_a_curve_are_found_and_plots_are_written(tmp_path):
    assert other_keys(RECORDS) == ["alignment_gap"]
    written = {path.name for path in draw_plots(RECORDS, tmp_path)}
    assert {"loss.png", "recall.png", "clusters.png", "speed.png"} == written
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in written)
