"""Matplotlib figures out to disk (PNG, written atomically) or into a page (a data URI).

Figures are built as `matplotlib.figure.Figure` objects, never through pyplot, so no GUI
backend or global figure state is involved and nothing needs closing.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Text stays text in SVG (small, sharp, selectable); a fixed salt keeps the output stable.
SVG_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "slic"}


def new_figure(width: float, height: float, fitted: bool = True) -> Figure:
    """An empty figure of `width` x `height` inches at 100 dpi. `fitted` figures make room
    for their labels by measuring them (slow); others are laid out with fixed margins by
    `fixed_margins`."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained" if fitted else None)


def fixed_margins(figure: Figure) -> None:
    """Margins in inches that fit a title, axis labels and tick labels of a few characters,
    whatever the figure's size: ten times faster to draw than measured ones."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=0.85 / width, right=1 - 0.15 / width, top=1 - 0.45 / height,
                           bottom=0.55 / height, hspace=0.25 * 2.4 / max(height - 1.0, 1.0))


def save_png(figure: Figure, path: Path) -> Path:
    """Write `figure` to `path` as PNG; readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.writing.png")
    figure.savefig(temporary, format="png")
    os.replace(temporary, path)
    return path


def figure_uri(figure: Figure, image_format: str = "svg") -> str:
    """`figure` as a `data:` URI (SVG or PNG) for an <img> of a self-contained page."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context(SVG_STYLE):
        figure.savefig(buffer, format=image_format, metadata={"Date": None}
                       if image_format == "svg" else None)
    media = "image/svg+xml" if image_format == "svg" else "image/png"
    return f"data:{media};base64," + base64.b64encode(buffer.getvalue()).decode()
