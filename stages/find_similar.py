"""`slic search`: the videos of a collection most like some query videos, by a trained encoder.

The collection is a dataset of the workspace (the run's, unless named): its videos are
embedded once with the run's encoder and the retrieve section's clip settings, cached as
features.h5 in `<run>/search/<dataset>-<feature>/`, and indexed beside it
(`stages.search`: exact for small collections, faiss above). A query is a video id of the
collection, or a video file or folder anywhere: those are decoded with the collection's own
extract-frames settings into a scratch frames.h5 and embedded with exactly the same clips.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages import extract_frames
from stages.clips.store import ClipStore
from stages.evaluation.gallery import Shown, clip_sprite, write_search_page
from stages.evaluation.sources import frames_of, resolve_checkpoint
from stages.extract_frames_config import ExtractFramesConfig
from stages.io.artifacts import KIND_FRAMES, open_artifact, read_provenance
from stages.io.features import FeatureSet
from stages.io.run_folder import RunFolder
from stages.io.write_guard import guard_output
from stages.retrieve import embed_rows, embed_videos
from stages.retrieve_config import RetrieveConfig
from stages.runtime.context import RunContext
from stages.runtime.errors import ConfigError
from stages.runtime.progress import SilentProgress
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from stages.search.cache import cached_index
from stages.search.index import IndexDescription
from stages.training.compute import Compute, computing


@dataclass
class SearchResult:
    """What `slic search` found: for each query its k neighbours (video id, path in the
    collection, cosine similarity), and where the collection's features and index are."""

    features: Path
    index: Path
    index_outcome: str  # reused, built, or rebuilt: why
    collection_size: int
    queries: list[dict[str, Any]]
    seconds: float
    gallery: Path | None = None
    index_recall: str = "exact"  # an approximate index's recall@k against exact search

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary: `features`, `index`, `index_outcome`, `index_recall` (exact,
        or an approximate index's calibrated recall@k against exact search), `collection_size`,
        `queries` (each {"query", "neighbours": [{"video_id", "relpath", "similarity"}]}),
        `gallery` (the page written, or None)."""
        return {"stage": "search", "features": str(self.features), "index": str(self.index),
                "index_outcome": self.index_outcome, "index_recall": self.index_recall,
                "collection_size": self.collection_size, "queries": self.queries,
                "gallery": str(self.gallery) if self.gallery else None,
                "seconds": round(self.seconds, 3)}


def run(settings: RetrieveConfig, data: DataConfig, workspace: WorkspaceConfig, *,
        queries: list[str], k: int, method: str = "auto", context: RunContext | None = None,
        run_dir: Path | None = None, checkpoint: Path | None = None,
        gallery: Path | None = None, compute_settings: ComputeConfig | None = None
        ) -> SearchResult:
    """The `k` videos of the collection nearest to each of `queries` (video ids of the
    collection, video files, or folders of videos); with `gallery`, a page of them too."""
    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    if not queries:
        raise ConfigError("name at least one --query: a video file, a folder of videos, or a "
                          "video id of the collection")
    context = (context or RunContext()).running(retrieve=settings, data=data,
                                                workspace=workspace,
                                                compute=compute_settings or ComputeConfig())
    clock = time.perf_counter()
    with computing(compute_settings or ComputeConfig()) as compute:
        path = resolve_checkpoint(run_dir, checkpoint, workspace, data)
        frames = frames_of(path, workspace, data, False)
        if gallery is not None:  # refused before any work when it is no page slic wrote
            guard_output(Path(gallery), "page", option="--gallery", inputs=[path, frames])
        folder = path.parent / "search" / f"{frames.parent.name}-{settings.feature}"
        folder.mkdir(parents=True, exist_ok=True)
        collection, _ = embed_videos(settings, path, frames, data.split,
                                     RunFolder(folder).features, compute, context)
        index_path = RunFolder(folder).search_index
        cached = cached_index(collection.features, index_path, method)
        store = ClipStore(frames)
        relpaths = dict(zip((str(v) for v in store.table.columns["video_id"]),
                            (str(p) for p in store.table.columns["relpath"])))
        row_of = {str(v): row for row, v in enumerate(store.table.columns["video_id"])}
        ids = [str(v) for v in collection.video_ids]
        position = {video_id: row for row, video_id in enumerate(ids)}
        asked = _query_vectors(queries, ids, collection, settings, path, store, compute,
                               context, gallery is not None)
        # One search for every query (one pass over an exact index's collection); one more
        # neighbour than k, in case a query of the collection finds itself.
        similarities, rows = cached.index.search(np.stack([q.vector for q in asked]), k + 1)
        found, page = [], []
        for query, scores, nearest in zip(asked, similarities, rows):
            own = position.get(query.name, -1)
            neighbours = [{"video_id": ids[row], "relpath": relpaths.get(ids[row], ""),
                           "similarity": round(float(similarity), 6)}
                          for similarity, row in zip(scores, nearest)
                          if row != own and row >= 0][:k]  # -1: fewer were found
            found.append({"query": query.name, "neighbours": neighbours})
            if gallery is not None:
                page.append((Shown(Path(query.name).name, query.name, query.sprite), [
                    Shown(f"{n['relpath']} ({n['similarity']:.2f})", n["video_id"],
                          clip_sprite(store, row_of[n["video_id"]])) for n in neighbours]))
    if gallery is not None and compute.distribution.is_main:
        write_search_page(Path(gallery), f"slic search: the {k} videos most like each query",
                          page)
    return SearchResult(RunFolder(folder).features, index_path, cached.outcome, len(ids),
                        found, time.perf_counter() - clock, gallery,
                        index_recall(cached.index.description))


def index_recall(description: IndexDescription) -> str:
    """What an index's answers are worth: "exact", or the recall@k against exact search its
    calibration measured on rows of the collection held out as queries."""
    if description.method == "exact":
        return "exact"
    return (f"{description.method}: recall@{description.recall_k} {description.recall:.3f} "
            f"against exact search ({description.recall_queries} held-out rows)")


@dataclass(frozen=True)
class Query:
    """One query video: its name (as typed, or its file inside a queried folder), (D,)
    feature and, for a gallery, its `clip_sprite` ("" otherwise)."""

    name: str
    vector: np.ndarray
    sprite: str = ""


def _query_vectors(queries: list[str], ids: list[str], collection: FeatureSet,
                   settings: RetrieveConfig, checkpoint: Path, store: ClipStore,
                   compute: Compute, context: RunContext, sprites: bool) -> list[Query]:
    """Each query: a collection video's own row, or the features of video files embedded as
    the collection's were (`store`: the collection's frames)."""
    known = set(ids)
    files = [q for q in queries if q not in known]
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise ConfigError(f"query {missing[0]} is neither a file, a folder, nor a video id of "
                          f"the collection ({len(ids)} videos, e.g. {ids[0] if ids else '-'})")
    embedded = _embed_files(files, settings, checkpoint, store.frames_path, compute, context,
                            sprites) if files else {}
    row_of = {str(v): row for row, v in enumerate(store.table.columns["video_id"])}
    position = {video_id: row for row, video_id in enumerate(ids)}
    found: list[Query] = []
    for query in queries:
        if query in position:
            sprite = clip_sprite(store, row_of[query]) if sprites else ""
            found.append(Query(query, collection.features[position[query]], sprite))
        else:
            found.extend(embedded[query])
    if not found:
        raise ConfigError(f"the queries ({', '.join(queries[:3])}) hold no video to search with")
    return found


def _embed_files(files: list[str], settings: RetrieveConfig, checkpoint: Path,
                 frames: Path, compute: Compute, context: RunContext, sprites: bool
                 ) -> dict[str, list[Query]]:
    """query as typed -> its videos (one for a file, each of a folder's) as `Query`s:
    decoded with the collection's extract-frames settings into a scratch frames.h5, then
    embedded with the collection's clips."""
    with open_artifact(frames, KIND_FRAMES) as h5:
        stored = read_provenance(h5)["config"].get("extract_frames", {})
    known = {field.name for field in dataclasses.fields(ExtractFramesConfig)}
    extract = ExtractFramesConfig(**{k: v for k, v in stored.items() if k in known})
    with tempfile.TemporaryDirectory(prefix="slic-search-") as scratch:
        videos = Path(scratch) / "videos"
        owners: dict[str, tuple[str, str]] = {}  # link stem -> (query, video file)
        for index, query in enumerate(files):
            place = Path(query)
            members = sorted(p for p in place.rglob("*") if p.is_file()) if place.is_dir() \
                else [place]
            for member in members:
                stem = f"q{index:03d}-{len(owners):05d}"
                link = videos / f"{stem}{member.suffix.lower()}"
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(member.resolve())
                owners[stem] = (query, str(member))
        quiet = RunContext(progress=SilentProgress())
        space = WorkspaceConfig(root=str(Path(scratch) / "ws"))
        query_data = DataConfig(dataset="folder", root=str(videos), name="queries",
                                labels="none")
        made = extract_frames.run(extract, query_data, space, context=quiet)
        store = ClipStore(made.output)
        features = embed_rows(settings, checkpoint, store, np.arange(len(store.table)),
                              compute, context)
        by_query: dict[str, list[Query]] = {q: [] for q in files}
        for row, (video_id, vector) in enumerate(zip(store.table.columns["video_id"],
                                                     features)):
            query, member = owners[Path(str(video_id)).name.split(".")[0]]
            sprite = clip_sprite(store, row) if sprites else ""
            by_query[query].append(Query(member, vector, sprite))
    empty = [q for q, rows in by_query.items() if not rows]
    if empty:
        raise ConfigError(f"query {empty[0]} holds no video slic could decode")
    return by_query
