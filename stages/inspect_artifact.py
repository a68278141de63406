"""inspect: what an artifact is, where it came from, and what it holds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from stages.datasets.base import MEMBERSHIP_NAMES
from stages.errors import ArtifactError
from stages.io.artifacts import (
    KIND_ASSIGNMENTS,
    KIND_FEATURES,
    KIND_FLOW,
    KIND_FRAMES,
    KIND_RETRIEVAL,
    feature_dim,
    open_artifact,
    read_assignment_rounds,
    read_assignments,
    read_failures,
    read_features,
    read_provenance,
    read_retrieval,
    read_video_table,
    stream_info,
    stream_names,
)


def _describe_videos(h5: h5py.File) -> dict[str, Any]:
    """Counts, per-class table, split sizes, streams and failures of a frames or flow artifact."""
    table = read_video_table(h5)
    failures, missing = read_failures(h5)
    labels = table.columns["label"]
    images = table.columns["num_images"]
    per_class = [
        {"class": name, "videos": int((labels == i).sum()),
         "images": int(images[labels == i].sum())}
        for i, name in enumerate(table.class_names)
    ]
    splits = {
        name: {MEMBERSHIP_NAMES[code]: count for code, count in
               sorted(Counter(table.splits[:, s].tolist()).items())}
        for s, name in enumerate(table.split_names)
    }
    return {
        "num_videos": len(table),
        "num_classes": len(table.class_names),
        "num_images": int(images.sum()),
        "streams": {name: stream_info(h5, name) for name in stream_names(h5)},
        "splits": splits,
        "classes": per_class,
        "failures": [f.__dict__ for f in failures],
        "num_missing": len(missing),
        "missing_first": missing[:10],
        **{key: h5.attrs[key].item() if hasattr(h5.attrs[key], "item") else h5.attrs[key]
           for key in ("bound", "method") if key in h5.attrs},
    }


def _describe_assignments(h5: h5py.File) -> dict[str, Any]:
    found = read_assignments(h5)
    known = found.labels[found.labels >= 0]
    return {
        "num_videos": int(found.partitions.shape[1]),
        "num_classes": int(len(np.unique(known))),
        "num_clusters": [int(c) for c in found.partitions.max(axis=1) + 1],
        "chosen_from": found.chosen_from, "num_chosen_clusters": int(found.chosen.max()) + 1,
        "method": found.method, "quality": found.quality,
        "rounds": [{"epoch": epoch, "num_clusters": int(r.chosen.max()) + 1,
                    **({k: r.quality[-1][k] for k in ("nmi", "ami", "ari", "purity")}
                       if r.quality else {})}
                   for epoch, r in read_assignment_rounds(h5)],
    }


def _describe_features(h5: h5py.File) -> dict[str, Any]:
    stored = read_features(h5, vectors=False)
    known = stored.labels[stored.labels >= 0]
    return {
        "num_videos": len(stored.features), "dim": feature_dim(h5),
        "feature": stored.feature, "num_classes": int(len(np.unique(known))),
        "splits": dict(sorted(Counter(stored.split.tolist()).items())),
        "source": stored.source,
    }


def _describe_retrieval(h5: h5py.File) -> dict[str, Any]:
    table = read_retrieval(h5)
    return {"num_queries": len(table.query_ids), "num_gallery": len(table.gallery_ids),
            "num_neighbours": int(table.neighbours.shape[1]),
            "recall": {str(k): v for k, v in table.recall.items()},
            "per_class": table.per_class}


DESCRIBERS = {KIND_FRAMES: _describe_videos, KIND_FLOW: _describe_videos,
              KIND_ASSIGNMENTS: _describe_assignments, KIND_FEATURES: _describe_features,
              KIND_RETRIEVAL: _describe_retrieval}


def describe(path: Path) -> dict[str, Any]:
    """Everything `slic inspect` shows, as one JSON-able dict."""
    with open_artifact(path) as h5:
        kind = str(h5.attrs["kind"])
        if kind not in DESCRIBERS:
            raise ArtifactError(f"{path} is a {kind!r} artifact, which this slic cannot show")
        return {
            "path": str(path),
            "kind": kind,
            "schema_version": int(h5.attrs["schema_version"]),
            "file_size": Path(path).stat().st_size,
            "fingerprint": str(h5.attrs["fingerprint"]),
            "content_digest": str(h5.attrs.get("content_digest", "")),
            "provenance": read_provenance(h5),
            **DESCRIBERS[kind](h5),
        }
