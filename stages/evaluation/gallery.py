"""The qualitative view of retrieval: test queries and their nearest training videos.

Every clip is an animated thumbnail (8 frames spread over the whole video, looping; a
reader who asks for reduced motion sees the first frame) above a strip of 4 of those frames,
so the motion shows on screen and in print. All thumbnails have one size. Borders: blue for
the query, green for a neighbour of the query's class, red for another class; a legend says
so. Queries are drawn evenly from the classes. Frames are those stored in frames.h5, embedded
as JPEG data URIs, so the page needs no network and no other file.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.clips.store import ClipStore
from stages.io.images import encode_image
from stages.io.write_guard import PAGE_MARK

TILE_WIDTH, TILE_HEIGHT = 128, 96  # px of one thumbnail frame (4:3)
SPRITE_FRAMES = 8  # frames of an animated thumbnail
STRIP_TILES = (0, 2, 4, 6)  # the sprite's frames shown in the strip below it

STYLE = f"""
.gallery td{{padding:4px;text-align:center;font-size:12px;vertical-align:top;
  width:{TILE_WIDTH + 8}px}}
.clip{{width:{TILE_WIDTH}px;height:{TILE_HEIGHT}px;margin:auto;border:4px solid #ccc;
  background-image:var(--clip);background-size:{100 * SPRITE_FRAMES}% 100%;
  animation:play 1.2s steps({SPRITE_FRAMES}) infinite}}
.clip:hover{{animation-play-state:paused}}
@keyframes play{{from{{background-position:0 0}}
  to{{background-position:-{TILE_WIDTH * SPRITE_FRAMES}px 0}}}}
@media (prefers-reduced-motion:reduce){{.clip{{animation:none}}}}
.strip{{display:flex;justify-content:center;gap:1px;margin-top:2px}}
.strip i{{width:{TILE_WIDTH // 4 - 1}px;height:{TILE_HEIGHT // 4}px;
  background-image:var(--clip);background-size:{100 * SPRITE_FRAMES}% 100%}}
{''.join(f".strip .t{t}{{background-position:{100 * t / (SPRITE_FRAMES - 1):.3f}% 0}}"
         for t in STRIP_TILES)}
.query .clip{{border-color:#226}}.hit .clip{{border-color:#2a2}}.miss .clip{{border-color:#c22}}
.swatch{{display:inline-block;width:12px;height:12px;border:3px solid;margin:0 4px 0 12px;
  vertical-align:middle}}
.swatch.query{{border-color:#226}}.swatch.hit{{border-color:#2a2}}.swatch.miss{{border-color:#c22}}
.video-id{{color:#666;font-size:10px;word-break:break-all}}
"""
PAGE_STYLE = "body{font-family:sans-serif;margin:16px}table{border-collapse:collapse}"


def balanced_queries(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Positions of up to `count` queries spread evenly over the classes of `labels` (Q,):
    the classes in a seeded random order take turns, each giving a query it has not given
    yet, drawn at random. Returned sorted by class, then position."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c)))
             for c in rng.permutation(np.unique(labels))]
    chosen: list[int] = []
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop()))
    order = np.lexsort((chosen, labels[chosen])) if chosen else []
    return np.asarray(chosen, dtype=np.int64)[order]


def _tile(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (TILE_HEIGHT, TILE_WIDTH, 3): centre crop to 4:3, then resize."""
    height, width = frame.shape[:2]
    crop_w = min(width, height * TILE_WIDTH // TILE_HEIGHT)
    crop_h = min(height, width * TILE_HEIGHT // TILE_WIDTH)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return cv2.resize(frame[top:top + crop_h, left:left + crop_w], (TILE_WIDTH, TILE_HEIGHT),
                      interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Shown:
    """One thumbnail of a search page: a caption, the video's id and its `clip_sprite`."""

    caption: str
    video_id: str
    sprite: str


def clip_sprite(store: ClipStore, video: int) -> str:
    """A data URI of a JPEG: SPRITE_FRAMES frames of `video` spread over its length, each
    a TILE_WIDTH x TILE_HEIGHT tile, side by side."""
    count = store.frame_count(video)
    frames = store.rgb(video, np.linspace(0, count - 1, SPRITE_FRAMES).round().astype(int))
    sprite = np.concatenate([_tile(frame) for frame in frames], axis=1)
    encoded = encode_image(np.ascontiguousarray(sprite), "jpeg", 80)
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode()


def _cell(video: int | str, caption: str, video_id: str, kind: str) -> str:
    strip = "".join(f'<i class="t{t}"></i>' for t in STRIP_TILES)
    return (f'<td class="{kind}"><div class="clip v{video}"></div><div class="strip v{video}">'
            f"{strip}</div>{html.escape(caption)}<br>"
            f'<span class="video-id">{html.escape(video_id)}</span></td>')


def legend_html() -> str:
    """The paragraph that explains the border colours and the animated thumbnails."""
    return ('<p class="legend">Borders:<span class="swatch query"></span>query (a test video)'
            '<span class="swatch hit"></span>neighbour of the query\'s class'
            '<span class="swatch miss"></span>neighbour of another class. Each thumbnail '
            f"loops {SPRITE_FRAMES} frames spread over the whole video (hover to pause); the "
            f"strip below it shows {len(STRIP_TILES)} of them, earliest on the left.</p>")


def gallery_html(store: ClipStore, query_rows: np.ndarray, gallery_rows: np.ndarray,
                 neighbours: np.ndarray, similarities: np.ndarray, shown: np.ndarray) -> str:
    """The legend and one table row per query at positions `shown`: the query, then its
    neighbours, best first, with class and cosine similarity.

    `query_rows` (Q,) and `gallery_rows` (G,) are rows of the store's video table;
    `neighbours` (Q, K) positions in the gallery; `similarities` (Q, K) float.
    """
    labels = store.table.columns["label"]
    names = store.table.class_names
    ids = store.table.columns["video_id"]
    rows, videos = [], set()
    for position in shown.tolist():
        query = int(query_rows[position])
        videos.add(query)
        cells = [_cell(query, f"query: {names[labels[query]]}", str(ids[query]), "query")]
        for rank, (found, similarity) in enumerate(zip(neighbours[position],
                                                       similarities[position])):
            video = int(gallery_rows[found])
            videos.add(video)
            kind = "hit" if labels[video] == labels[query] else "miss"
            cells.append(_cell(video, f"{rank + 1}. {names[labels[video]]} ({similarity:.2f})",
                               str(ids[video]), kind))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    # Each video's frames once, however often it is shown.
    sprites = "".join(f".v{video}{{--clip:url({clip_sprite(store, video)})}}"
                      for video in sorted(videos))
    return (f"<style>{sprites}</style>{legend_html()}"
            f'<table class="gallery">{"".join(rows)}</table>')


def write_search_page(path: Path, title: str, rows: list[tuple[Shown, list[Shown]]]) -> Path:
    """Write a page of `slic search`: one table row per query (blue), then its neighbours,
    best first (gray: no classes to colour them by)."""
    cells, sprites = [], []
    for number, (query, neighbours) in enumerate(rows):
        row = [_cell(f"q{number}", f"query: {query.caption}", query.video_id, "query")]
        sprites.append(f".vq{number}{{--clip:url({query.sprite})}}")
        for rank, found in enumerate(neighbours):
            key = f"n{number}-{rank}"
            row.append(_cell(key, f"{rank + 1}. {found.caption}", found.video_id, "found"))
            sprites.append(f".v{key}{{--clip:url({found.sprite})}}")
        cells.append("<tr>" + "".join(row) + "</tr>")
    legend = ('<p class="legend">Each row: a query (blue border), then the videos of the '
              "collection most like it, best first, with their cosine similarity. Each "
              f"thumbnail loops {SPRITE_FRAMES} frames spread over the whole video.</p>")
    body = (f"<style>{''.join(sprites)}</style>{legend}"
            f'<table class="gallery">{"".join(cells)}</table>')
    return _publish(path, title, body)


def _publish(path: Path, title: str, body: str) -> Path:
    """Write a self-contained page with the gallery style, atomically."""
    page = (f"<!doctype html><meta charset=utf-8>{PAGE_MARK}<title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}{STYLE}.numbers td,.numbers th{{padding:2px 10px}}</style>"
            f"<h1>{html.escape(title)}</h1>{body}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.writing")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, path)
    return path


def recall_table_html(recall: dict[int, float]) -> str:
    """A one-row table of R@k, k ascending, each to 3 decimals."""
    header = "".join(f"<th>R@{k}</th>" for k in sorted(recall))
    values = "".join(f"<td>{recall[k]:.3f}</td>" for k in sorted(recall))
    return f'<table class="numbers"><tr>{header}</tr><tr>{values}</tr></table>'


def write_gallery(path: Path, store: ClipStore, query_rows: np.ndarray,
                  gallery_rows: np.ndarray, neighbours: np.ndarray, similarities: np.ndarray,
                  shown: np.ndarray, title: str, recall: dict[int, float]) -> Path:
    """Write a page of the R@k of all queries and the `gallery_html` of those `shown`."""
    body = gallery_html(store, query_rows, gallery_rows, neighbours, similarities, shown)
    return _publish(path, title, f"<h2>Recall of all {len(query_rows)} queries</h2>"
                    f"{recall_table_html(recall)}<h2>{len(shown)} queries, drawn evenly from "
                    f"the classes</h2>{body}")
