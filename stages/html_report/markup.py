"""The HTML pieces of a report: tables, figures, sections and the page around them.

Everything is inline (CSS, images as data URIs); the page loads nothing, runs no script and
reads the same from disk, a mail attachment or a web server.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stages.evaluation.gallery import STYLE as GALLERY_STYLE
from stages.io.figures import figure_uri
from stages.io.write_guard import PAGE_MARK

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;line-height:1.4}
header{background:#234;color:#fff;padding:12px 24px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#cde;font-size:13px}
nav{position:sticky;top:0;background:#f4f6f8;border-bottom:1px solid #ddd;padding:6px 24px;
  font-size:13px;z-index:1}nav a{margin-right:14px;color:#235}
main{padding:0 24px 48px;max-width:1280px}section{margin-top:28px}
h2{border-bottom:2px solid #234;padding-bottom:2px}h3{margin-bottom:6px}
table.numbers{border-collapse:collapse;margin:6px 0;font-size:13px}
table.numbers th,table.numbers td{border:1px solid #ccc;padding:3px 10px;text-align:left}
table.numbers td.n{text-align:right;font-variant-numeric:tabular-nums}
table.numbers th{background:#eef1f4}
figure{margin:10px 0;display:inline-block;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#555;max-width:640px}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px;max-height:480px}
details summary{cursor:pointer;color:#235;margin:6px 0}.note{color:#666;font-size:13px}
"""


@dataclass
class Section:
    """One part of the page: an anchor id, a heading and its HTML body."""

    anchor: str
    title: str
    body: str


def escape(value: Any) -> str:
    """`value` as text, HTML-escaped (quotes included)."""
    return html.escape(str(value))


def number(value: Any) -> str:
    """A table cell's text: floats to 3 decimals (3 significant digits when tiny or huge),
    None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3g}"
    return escape(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """A table of `rows`; numeric cells are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{number(c)}</td>' if isinstance(c, (int, float)) or c is None
            else f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<table class="numbers">{title}<tr>{head}</tr>{body}</table>'


def key_values(rows: dict[str, Any], columns: int = 1) -> str:
    """A table of names (as row headings) and values, in `columns` pairs of columns filled
    top to bottom."""
    pairs = [f"<th>{escape(key)}</th><td>{number(value)}</td>" for key, value in rows.items()]
    height = -(-len(pairs) // columns)
    body = "".join("<tr>" + "".join(pairs[row::height]) + "</tr>" for row in range(height))
    return f'<table class="numbers">{body}</table>'


def figure(made: Figure, caption: str, image_format: str = "svg") -> str:
    """An inline figure (SVG for line charts, PNG for dense ones) with a caption."""
    uri = figure_uri(made, image_format)
    return (f'<figure><img src="{uri}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def details(summary: str, body: str) -> str:
    """A collapsed block: `summary` (escaped) as its label, the HTML `body` inside."""
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole document: header, a navigation bar of the sections, then the sections."""
    links = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in sections)
    parts = "".join(f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>{s.body}</section>'
                    for s in sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{PAGE_MARK}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}{GALLERY_STYLE}</style></head>"
            f"<body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
            f"<nav>{links}</nav><main>{parts}</main></body></html>\n")
