"""The confusion figure on tiny matrices: what it draws (shares of each true class), the counts
and their colours, the labels, ticks and title, and the size it takes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from matplotlib import rc_context
from matplotlib.collections import QuadMesh

from stages.evaluation import classification
from stages.evaluation.classification import confusion_figure, draw_confusion

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAMES = ["walk", "run", "jump", "sit"]
# Row = true class. Row 1 splits evenly (a share of exactly 0.5), row 3 has no test video.
MATRIX = np.array([[2, 1, 0, 0],
                   [0, 2, 2, 0],
                   [1, 0, 0, 0],
                   [0, 0, 0, 0]])


def test_cells_are_shares_of_the_true_class_with_their_counts():
    figure = confusion_figure(MATRIX, NAMES, "Linear probe")
    axes = figure.axes[0]
    image = axes.images[0]
    expected = np.array([[2 / 3, 1 / 3, 0, 0],
                         [0, 0.5, 0.5, 0],
                         [1, 0, 0, 0],
                         [0, 0, 0, 0]])  # a class without videos reads 0, not NaN
    assert np.allclose(np.asarray(image.get_array()), expected)
    assert image.get_clim() == (0, 1) and image.get_cmap().name == "Blues"
    cells = {(text.get_position(), text.get_text(), text.get_color()) for text in axes.texts}
    # Counts in the non-zero cells (x = predicted, y = true); white on dark cells (> 0.5).
    assert cells == {((0, 0), "2", "white"), ((1, 0), "1", "black"), ((1, 1), "2", "black"),
                     ((2, 1), "2", "black"), ((0, 2), "1", "white")}
    assert {text.get_ha() for text in axes.texts} == {"center"}
    assert {text.get_va() for text in axes.texts} == {"center"}
    assert {text.get_fontsize() for text in axes.texts} == {9}
    colour_bar = figure.axes[1]
    assert colour_bar.get_ylabel() == "share of the true class's test videos"
    colours = [c for c in colour_bar.collections if isinstance(c, QuadMesh)]
    assert [c.get_cmap().name for c in colours] == ["Blues"]  # the image's colours
    figure.draw_without_rendering()  # lays the figure out
    assert colour_bar.get_ylim() == (0, 1)
    bar, cells = colour_bar.get_position(), axes.get_position()
    assert bar.height == pytest.approx(0.8 * cells.height, rel=0.02)  # shrunk to 80 %
    assert bar.x0 > cells.x1  # beside the matrix, on its right


def test_the_colour_scale_is_zero_to_one_whatever_the_shares():
    """Shares of 0.5 only: an autoscaled image would make them the darkest and palest."""
    image = confusion_figure(np.ones((2, 2), np.int64), NAMES[:2], "t").axes[0].images[0]
    assert image.get_clim() == (0, 1)


def test_axes_name_the_classes_and_the_title_counts_the_videos():
    figure = confusion_figure(MATRIX, NAMES, "Fine-tuning")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == NAMES
    assert [t.get_text() for t in axes.get_yticklabels()] == NAMES
    assert list(axes.get_xticks()) == [0, 1, 2, 3] == list(axes.get_yticks())
    assert {t.get_rotation() for t in axes.get_xticklabels()} == {90}
    assert {t.get_rotation() for t in axes.get_yticklabels()} == {0}
    assert {t.get_fontsize() for t in axes.get_xticklabels() + axes.get_yticklabels()} == {9}
    assert axes.get_xlabel() == "predicted class" and axes.get_ylabel() == "true class"
    assert axes.get_title() == "Fine-tuning\n(8 test videos, cells: video counts)"
    assert axes.title.get_fontsize() == 10
    with rc_context({"font.size": 14}):  # a user's style does not change the title size
        assert confusion_figure(MATRIX, NAMES, "t").axes[0].title.get_fontsize() == 10
    width, height = figure.get_size_inches()
    side = 4.5 + 0.25 * 4
    assert (width, height) == pytest.approx((side + 1.2, side))


def test_counts_are_written_up_to_the_limit_of_classes(monkeypatch: pytest.MonkeyPatch):
    """With the limit lowered to 4 classes (30 in use), 4 classes still show their counts and
    5 do not: cheaper to draw than 30 and 31 classes, and the same comparison."""
    monkeypatch.setattr(classification, "MAX_CLASSES_WITH_COUNTS", 4)
    four = confusion_figure(MATRIX, NAMES, "t").axes[0]
    assert len(four.texts) == 5 and four.get_title() == "t\n(8 test videos, cells: video counts)"
    five = np.eye(5, dtype=np.int64) * 3
    axes = confusion_figure(five, [*NAMES, "jog"], "t").axes[0]
    assert len(axes.texts) == 0 and axes.get_title() == "t\n(15 test videos)"


@pytest.mark.parametrize("classes, side, font", [(20, 9.5, 9), (21, 9.75, 7), (63, 20.0, 7)])
def test_the_figure_grows_with_the_classes_up_to_a_bound(classes: int, side: float, font: int):
    """Size and tick font depend on the number of class names alone: a 1 x 1 matrix of
    zeros keeps the figure cheap (no counts to write)."""
    figure = confusion_figure(np.zeros((1, 1), np.int64), [str(i) for i in range(classes)], "t")
    assert tuple(figure.get_size_inches()) == pytest.approx((side + 1.2, side))
    labels = figure.axes[0].get_xticklabels() + figure.axes[0].get_yticklabels()
    assert len(labels) == 2 * classes and {t.get_fontsize() for t in labels} == {font}


def test_draw_confusion_saves_the_figure_of_its_arguments(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path):
    saved = {}

    def save_png(figure: Figure, path: Path) -> Path:
        saved.update(figure=figure, path=path)
        return path

    monkeypatch.setattr(classification, "save_png", save_png)
    path = tmp_path / "confusion.png"
    assert draw_confusion(MATRIX, NAMES, path, "probe") == path == saved["path"]
    axes = saved["figure"].axes[0]
    assert axes.get_title() == "probe\n(8 test videos, cells: video counts)"
    assert [t.get_text() for t in axes.get_yticklabels()] == NAMES
    assert np.allclose(np.asarray(axes.images[0].get_array())[1], [0, 0.5, 0.5, 0])
