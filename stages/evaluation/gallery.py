"""The qualitative view of retrieval: a self-contained HTML page of queries and neighbours.

Each row shows a query's middle frame and the middle frames of its nearest training videos,
with class names; a neighbour of the query's class is framed in green, another in red.
Frames are the JPEGs already stored in frames.h5, embedded as data URIs.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np

from stages.clips.store import ClipStore
from stages.io.images import encode_image

STYLE = """body{font-family:sans-serif;margin:16px}table{border-collapse:collapse}
td{padding:4px;text-align:center;font-size:12px;vertical-align:top}
img{width:128px;border:4px solid #ccc}.hit img{border-color:#2a2}.miss img{border-color:#c22}
.query img{border-color:#226}"""


def _middle_frame(store: ClipStore, video: int) -> str:
    frames = store.rgb(video, np.array([store.frame_count(video) // 2]))
    encoded = encode_image(frames[0], "jpeg", 85)
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode()


def _cell(store: ClipStore, video: int, caption: str, kind: str) -> str:
    return (f'<td class="{kind}"><img src="{_middle_frame(store, video)}"><br>'
            f"{html.escape(caption)}</td>")


def write_gallery(path: Path, store: ClipStore, query_rows: np.ndarray,
                  gallery_rows: np.ndarray, neighbours: np.ndarray, similarities: np.ndarray,
                  shown: np.ndarray, title: str) -> Path:
    """Write the page for the queries at positions `shown`.

    `query_rows` (Q,) and `gallery_rows` (G,) are rows of the store's video table;
    `neighbours` (Q, K) positions in the gallery; `similarities` (Q, K).
    """
    labels = store.table.columns["label"]
    names = store.table.class_names
    lines = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style><h1>{html.escape(title)}</h1><table>"]
    for position in shown.tolist():
        query = int(query_rows[position])
        cells = [_cell(store, query, f"query: {names[labels[query]]}", "query")]
        for rank, (found, similarity) in enumerate(zip(neighbours[position],
                                                       similarities[position])):
            video = int(gallery_rows[found])
            kind = "hit" if labels[video] == labels[query] else "miss"
            cells.append(_cell(store, video,
                               f"{rank + 1}. {names[labels[video]]} ({similarity:.2f})", kind))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.writing")
    temporary.write_text("\n".join(lines), encoding="utf-8")
    os.replace(temporary, path)
    return path
