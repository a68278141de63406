"""retrieve: test-to-train nearest-neighbour retrieval with a pretrained encoder (R@k).

Protocol of the paper: every video of the split is embedded as the mean feature of `clips`
evenly spaced windows (resize short side, centre crop); each test video queries the training
videos by cosine similarity; a query scores at k when one of its k nearest has its class.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages import __version__
from stages.clips.fixed_windows import EvaluationClips
from stages.clips.store import ClipStore
from stages.datasets.base import split_caveats
from stages.evaluation.gallery import balanced_queries, write_gallery
from stages.evaluation.random_init import RandomInit, baseline_summary
from stages.evaluation.recall import per_class_recall
from stages.evaluation.retrieval import nearest_neighbours, recall_at_k
from stages.evaluation.sources import (
    evaluated_frames,
    frames_of,
    load_encoder,
    random_init_baseline,
    require_labelled,
    resolve_checkpoint,
)
from stages.io.artifacts import (
    KIND_FEATURES,
    KIND_RETRIEVAL,
    Provenance,
    RetrievalTable,
    StoredFeatures,
    artifact_fingerprint,
    check_output,
    content_digest_of,
    file_checksum,
    write_artifact,
    write_features,
    write_provenance,
    write_retrieval,
)
from stages.io.features import FeatureSet, load_features
from stages.io.run_folder import RunFolder
from stages.io.write_guard import guard_output
from stages.pretrain_config import PretrainConfig
from stages.retrieve_config import RetrieveConfig, parse_ks
from stages.runtime.context import RunContext, fingerprint, now
from stages.runtime.errors import ArtifactError, ConfigError, DataError
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant
from stages.runtime.workspace import (
    dataset_folder,
    frames_path,
    point_latest,
    settings_folder,
    standalone_retrieval_folder,
)
from stages.training.compute import Compute, computing
from stages.training.embedding import embed_clips
from stages.training.video_split import split_rows

__all__ = ["RetrieveConfig", "RetrieveResult", "run"]

NEEDS_LABELS = ("retrieve measures R@k against the videos' classes; to find similar videos "
                "without labels, use slic search")


@dataclass
class RetrieveResult:
    """What `retrieve.run` did: retrieval.h5, the features it used, R@k (k -> share of queries),
    recall per class, the gallery page when one was drawn, and the random-init baseline when
    the encoder was one."""

    retrieval: Path
    features: Path | None
    recall: dict[int, float]
    per_class: list[dict[str, Any]]
    num_queries: int
    num_gallery: int
    features_reused: bool = False
    gallery: Path | None = None
    seconds: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)
    random_init: RandomInit | None = None
    made: str = ""  # how the figures were made: which videos, clips a video, which feature
    warnings: list[str] = field(default_factory=list)  # what makes them mean little

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `retrieval`, `features`, `features_reused`,
        `random_init` (what the baseline encoder is; None for a trained one),
        `random_init_seed`, `made` (how: queries, gallery, clips a video, feature),
        `num_queries`, `num_gallery`, one `r<k>` per k, `warnings` (about the split: classes
        without test or training videos, a handful of queries), `per_class` and `gallery`."""
        return {"stage": "retrieve", "retrieval": str(self.retrieval),
                "features": str(self.features) if self.features else None,
                "features_reused": self.features_reused,
                **baseline_summary(self.random_init), "made": self.made,
                "num_queries": self.num_queries, "num_gallery": self.num_gallery,
                **{f"r{k}": round(v, 6) for k, v in self.recall.items()},
                "warnings": self.warnings,
                "per_class": self.per_class,
                "gallery": str(self.gallery) if self.gallery else None,
                "seconds": round(self.seconds, 3)}


def clip_settings(settings: RetrieveConfig, trained: dict) -> tuple[int, int, int]:
    """(clip_length, stride, crop_size): the retrieve section's, else the checkpoint's."""
    return (settings.clip_length or trained["clip_length"], settings.stride or trained["stride"],
            settings.crop_size or trained["crop_size"])


def embed_rows(settings: RetrieveConfig, checkpoint: Path, store: ClipStore, rows: np.ndarray,
               compute: Compute, context: RunContext) -> np.ndarray:
    """(len(rows), D) float32 features of the videos `rows` of `store`, by `checkpoint`'s
    encoder with `settings`' clips, feature and batch size."""
    encoder, trained = load_encoder(checkpoint)
    encoder = encoder.to(compute.device, memory_format=compute.memory_format)
    clips = EvaluationClips(store, rows, *clip_settings(settings, trained), settings.clips)
    return embed_clips(encoder, clips, feature=settings.feature,
                       batch_size=settings.batch_size, workers=settings.workers,
                       compute=compute, progress=context.progress)


def embed_videos(settings: RetrieveConfig, checkpoint: Path, frames: Path, split: int,
                  out: Path, compute: Compute, context: RunContext) -> tuple[FeatureSet, bool]:
    """features.h5 of every train and test video of `frames` at `out` (reused when up to
    date), embedded by `checkpoint`'s encoder with `settings`' clips; and whether it was
    reused."""
    _, trained = load_encoder(checkpoint)
    clip_length, stride, crop_size = clip_settings(settings, trained)
    frames_digest = content_digest_of(frames)
    source = {"checkpoint": str(checkpoint), "checkpoint_checksum": file_checksum(checkpoint),
              "frames": str(frames), "frames_digest": frames_digest, "split": split,
              "feature": settings.feature, "clips": settings.clips,
              "clip_length": clip_length, "stride": stride, "crop_size": crop_size}
    # Paths are left out of the key: the checksum and digest identify the inputs.
    key = fingerprint({"stage": "retrieve-features",
                       **{k: v for k, v in source.items() if k not in ("checkpoint", "frames")}})
    if artifact_fingerprint(out) == key and not context.force:
        context.progress.message(f"features up to date: {out}")
        return load_features(out), True
    store = ClipStore(frames)
    train, test = split_rows(store, split)
    rows = np.concatenate([train, test])
    started = now()
    features = embed_rows(settings, checkpoint, store, rows, compute, context)
    split_names = np.array(["train"] * len(train) + ["test"] * len(test), dtype=object)
    stored = StoredFeatures(features, store.table.columns["video_id"][rows],
                            store.table.columns["label"][rows].astype(np.int64), split_names,
                            list(store.table.class_names), settings.feature, source)
    if not compute.distribution.is_main:
        return FeatureSet(features, stored.labels, split_names, stored.video_ids,
                          stored.class_names), False
    with write_artifact(out, KIND_FEATURES, key) as h5:
        write_features(h5, stored)
        inputs = [{"path": str(p), "size": p.stat().st_size} for p in (checkpoint, frames)]
        write_provenance(h5, Provenance(context.command, context.config, __version__, inputs,
                                        started, now()))
    return load_features(out), False


def run(settings: RetrieveConfig, data: DataConfig, workspace: WorkspaceConfig, *,
        context: RunContext | None = None, run_dir: Path | None = None,
        checkpoint: Path | None = None, features: Path | None = None,
        cross: str | None = None, out: Path | None = None,
        gallery: Path | None = None, compute_settings: ComputeConfig | None = None,
        random_init: bool = False, pretrain: PretrainConfig | None = None,
        random_init_seed: int | None = None) -> RetrieveResult:
    """Embed (or read) features, retrieve test -> train, write retrieval.h5 (and a gallery).

    With `random_init`, the encoder is an untrained one with the settings of the run it is
    compared with (`random_init_baseline`), drawn under `random_init_seed`, else the seed
    that run was trained with (`pretrain.seed` without a run). Under torchrun every rank
    embeds its share of the clips; rank 0 retrieves and writes."""
    context = (context or RunContext()).running(
        retrieve=settings, data=data, workspace=workspace,
        compute=compute_settings or ComputeConfig())
    baseline = None
    with computing(compute_settings or ComputeConfig()) as compute:
        if features is None:
            require_labelled(evaluated_frames(workspace, data, run_dir=run_dir,
                                              checkpoint=checkpoint, random_init=random_init,
                                              cross=cross), NEEDS_LABELS)
        if random_init:
            if features is not None:
                raise ConfigError("--random-init and --features exclude each other: features "
                                  "come from a model already")
            checkpoint, baseline = random_init_baseline(
                output_relevant(pretrain or PretrainConfig()), workspace, data,
                run_dir=run_dir, checkpoint=checkpoint, seed=random_init_seed)
        result = _run(settings, data, workspace, context=context, run_dir=run_dir,
                      checkpoint=checkpoint, features=features, cross=cross, out=out,
                      gallery=gallery, compute=compute)
        result.random_init = baseline
        return result


def _run(settings: RetrieveConfig, data: DataConfig, workspace: WorkspaceConfig, *,
         context: RunContext, run_dir: Path | None, checkpoint: Path | None,
         features: Path | None, cross: str | None, out: Path | None, gallery: Path | None,
         compute: Compute) -> RetrieveResult:
    clock = time.perf_counter()
    try:
        ks = parse_ks(settings.ks)
    except ValueError:
        raise ConfigError(f"retrieve.ks {settings.ks!r} must be positive integers separated "
                          "by commas, for example 1,5,10") from None
    target = DataConfig(**{**data.__dict__, "dataset": cross, "name": None}) if cross else data
    reused, features_path, frames = False, None, None
    if features is not None:
        output = Path(out) if out else _standalone_output(workspace, Path(features))
        check_output(output, KIND_RETRIEVAL, [Path(features)])
        _check_gallery(gallery, [Path(features), output])
        found = load_features(Path(features))
    else:
        path = resolve_checkpoint(run_dir, checkpoint, workspace, data)
        frames = frames_of(path, workspace, target, cross is not None)
        name = f"{frames.parent.name}-{settings.feature}"
        folder = settings_folder(path.parent / "retrieval", name, {
            key: value for key, value in output_relevant(settings).items()
            if key != "gallery_queries"})
        features_path = RunFolder(folder).features
        output = Path(out) if out else RunFolder(folder).retrieval
        check_output(output, KIND_RETRIEVAL, [path, frames, features_path])
        _check_gallery(gallery, [path, frames, features_path, output])
        found, reused = embed_videos(settings, path, frames, target.split, features_path,
                                      compute, context)
    if found.split is None:
        raise ArtifactError("retrieval needs 'split' (train/test) and 'labels' arrays in the "
                            "features; add them to the .npz")
    if found.labels is None:  # every label -1 (unlabelled videos) reads as none
        raise DataError(f"the features in {features or features_path} carry no labels "
                        f"(unlabelled videos, or a .npz without 'labels'): {NEEDS_LABELS}")
    split = np.asarray(found.split).astype(str)
    queries, gallery_rows = np.flatnonzero(split == "test"), np.flatnonzero(split == "train")
    if len(queries) == 0 or len(gallery_rows) == 0:
        raise ArtifactError(f"the features hold {len(gallery_rows)} train and {len(queries)} "
                            "test videos; retrieval needs both")
    labels = np.asarray(found.labels).astype(np.int64)
    similarities, neighbours = nearest_neighbours(found.features[queries],
                                                  found.features[gallery_rows], max(ks))
    neighbour_labels = labels[gallery_rows][neighbours]
    recall = recall_at_k(labels[queries], neighbour_labels, ks)
    class_names = found.class_names or [str(c) for c in range(labels.max() + 1)]
    per_class = per_class_recall(labels[queries], neighbour_labels, 1, class_names)
    ids = (found.video_ids if found.video_ids is not None
           else np.array([str(i) for i in range(len(labels))], dtype=object))
    table = RetrievalTable(neighbours, similarities, ids[queries], labels[queries],
                           ids[gallery_rows], labels[gallery_rows], recall, per_class)
    if not compute.distribution.is_main:
        return RetrieveResult(output, features_path, recall, per_class, len(queries),
                              len(gallery_rows), reused, None, time.perf_counter() - clock)
    started = now()
    key = fingerprint({"stage": "retrieve", "ks": ks, "features": str(features_path or features),
                       "settings": output_relevant(settings)})
    with write_artifact(output, KIND_RETRIEVAL, key) as h5:
        write_retrieval(h5, table)
        write_provenance(h5, Provenance(context.command, context.config, __version__,
                                        [{"path": str(features_path or features)}], started,
                                        now()))
    if features is None:
        point_latest(features_path.parent, features_path.parent.name.rsplit("-", 1)[0])
    shown_path = None
    if gallery is not None:
        shown_path = _gallery(Path(gallery), settings, workspace, target, table, ids, queries,
                              gallery_rows, frames if features is None else None)
    result = RetrieveResult(output, features_path, recall, per_class, len(queries),
                            len(gallery_rows), reused, shown_path, time.perf_counter() - clock)
    result.made = _how_made(settings, features, reused)
    result.warnings = split_caveats([class_names[c] for c in labels[gallery_rows]],
                                    [class_names[c] for c in labels[queries]], class_names)
    return result


def _how_made(settings: RetrieveConfig, features: Path | None, reused: bool) -> str:
    """One line on what the R@k figures measure, so that two of them can be compared."""
    if features is not None:
        return f"test videos against train videos, features read from {features}"
    embedded = "reused" if reused else "embedded now"
    return (f"test videos against train videos, {settings.clips} clips a video averaged, "
            f"{settings.feature} features ({embedded})")


def _check_gallery(gallery: Path | None, inputs: list[Path]) -> None:
    """Refuse, before any work, a --gallery path that is not new or a gallery slic wrote."""
    if gallery is not None:
        guard_output(Path(gallery), "page", option="--gallery", inputs=inputs)


def _standalone_output(workspace: WorkspaceConfig, features: Path) -> Path:
    """Where retrieval of a features file goes by default: the workspace, never beside the
    input (whose folder may be someone else's, shared or read-only)."""
    tag = hashlib.blake2b(str(features.resolve()).encode(), digest_size=4).hexdigest()
    return RunFolder(standalone_retrieval_folder(workspace, f"{features.stem}-{tag}")).retrieval


def _gallery(path: Path, settings: RetrieveConfig, workspace: WorkspaceConfig,
             data: DataConfig, table: RetrievalTable, ids: np.ndarray, queries: np.ndarray,
             gallery_rows: np.ndarray, features_frames: Path | None) -> Path:
    """Write the HTML gallery, finding each video's frames in the dataset's frames.h5."""
    frames = Path(features_frames) if features_frames else frames_path(workspace, data)
    if not frames.is_file():
        raise ConfigError(f"--gallery needs the frames of the videos: {frames} does not exist; "
                          f"set --dataset / --name to the dataset the features come from "
                          f"(workspace folder {dataset_folder(workspace, data)})")
    store = ClipStore(frames)
    row_of = {vid: i for i, vid in enumerate(store.table.columns["video_id"])}
    missing = [v for v in ids[queries][:3] if v not in row_of]
    if missing:
        raise ConfigError(f"--gallery: video {missing[0]!r} is not in {frames}; the features "
                          "come from another dataset")
    query_rows = np.array([row_of[v] for v in ids[queries]])
    gallery_store_rows = np.array([row_of.get(v, 0) for v in ids[gallery_rows]])
    shown = balanced_queries(table.query_labels, settings.gallery_queries)
    k = min(5, table.neighbours.shape[1])
    return write_gallery(path, store, query_rows, gallery_store_rows, table.neighbours[:, :k],
                         table.similarities[:, :k], shown,
                         f"slic retrieve: test queries and their {k} nearest training videos",
                         table.recall)
