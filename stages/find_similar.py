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
from stages.training.compute import Compute, computing

INDEX_FILE = "index.slic-index"


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

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary: `features`, `index`, `index_outcome`, `collection_size`,
        `queries` (each {"query", "neighbours": [{"video_id", "relpath", "similarity"}]}),
        `gallery` (the page written, or None)."""
        return {"stage": "search", "features": str(self.features), "index": str(self.index),
                "index_outcome": self.index_outcome, "collection_size": self.collection_size,
                "queries": self.queries,
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
        cached = cached_index(collection.features, folder / INDEX_FILE, method)
        store = ClipStore(frames)
        relpaths = dict(zip((str(v) for v in store.table.columns["video_id"]),
                            (str(p) for p in store.table.columns["relpath"])))
        row_of = {str(v): row for row, v in enumerate(store.table.columns["video_id"])}
        ids = [str(v) for v in collection.video_ids]
        found, page = [], []
        for query in _query_vectors(queries, ids, collection, settings, path, store,
                                    compute, context, gallery is not None):
            own = ids.index(query.name) if query.name in ids else -1
            similarities, rows = cached.index.search(query.vector[None], k + (own >= 0))
            neighbours = [{"video_id": ids[row], "relpath": relpaths.get(ids[row], ""),
                           "similarity": round(float(similarity), 6)}
                          for similarity, row in zip(similarities[0], rows[0])
                          if row != own and row >= 0][:k]  # -1: fewer were found
            found.append({"query": query.name, "neighbours": neighbours})
            if gallery is not None:
                page.append((Shown(Path(query.name).name, query.name, query.sprite), [
                    Shown(f"{n['relpath']} ({n['similarity']:.2f})", n["video_id"],
                          clip_sprite(store, row_of[n["video_id"]])) for n in neighbours]))
    if gallery is not None and compute.distribution.is_main:
        write_search_page(Path(gallery), f"slic search: the {k} videos most like each query",
                          page)
    return SearchResult(RunFolder(folder).features, folder / INDEX_FILE, cached.outcome,
                        len(ids), found, time.perf_counter() - clock, gallery)


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
    files = [q for q in queries if q not in ids]
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise ConfigError(f"query {missing[0]} is neither a file, a folder, nor a video id of "
                          f"the collection ({len(ids)} videos, e.g. {ids[0] if ids else '-'})")
    embedded = _embed_files(files, settings, checkpoint, store.frames_path, compute, context,
                            sprites) if files else {}
    row_of = {str(v): row for row, v in enumerate(store.table.columns["video_id"])}
    found: list[Query] = []
    for query in queries:
        if query in ids:
            sprite = clip_sprite(store, row_of[query]) if sprites else ""
            found.append(Query(query, collection.features[ids.index(query)], sprite))
        else:
            found.extend(embedded[query])
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
