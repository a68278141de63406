"""inspect: what an artifact is, where it came from, and what it holds.

HDF5 artifacts are described from their attributes and index tables; a checkpoint (.pt) from
the structure of its pickle, never unpickled (stages.io.checkpoint_reader); a results.json as
it is.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from stages.datasets.base import MEMBERSHIP_NAMES
from stages.io.artifacts import (
    KIND_ASSIGNMENTS,
    KIND_FEATURES,
    KIND_FLOW,
    KIND_FRAMES,
    KIND_RETRIEVAL,
    ArtifactFile,
    feature_dim,
    open_artifact,
    read_assignment_rounds,
    read_assignments,
    read_failures,
    read_features,
    read_flow_settings,
    read_header,
    read_provenance,
    read_retrieval,
    read_video_table,
    stream_info,
    stream_names,
)
from stages.io.checkpoint_reader import TensorInfo, read_checkpoint_structure, tensor_counts
from stages.runtime.errors import ArtifactError, ConfigError
from stages.runtime.settings import quoted


def _describe_videos(h5: ArtifactFile) -> dict[str, Any]:
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
        **read_flow_settings(h5),
    }


def _describe_assignments(h5: ArtifactFile) -> dict[str, Any]:
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


def _describe_features(h5: ArtifactFile) -> dict[str, Any]:
    stored = read_features(h5, vectors=False)
    known = stored.labels[stored.labels >= 0]
    return {
        "num_videos": len(stored.features), "dim": feature_dim(h5),
        "feature": stored.feature, "num_classes": int(len(np.unique(known))),
        "splits": dict(sorted(Counter(stored.split.tolist()).items())),
        "source": stored.source,
    }


def _describe_retrieval(h5: ArtifactFile) -> dict[str, Any]:
    table = read_retrieval(h5)
    return {"num_queries": len(table.query_ids), "num_gallery": len(table.gallery_ids),
            "num_neighbours": int(table.neighbours.shape[1]),
            "recall": {str(k): v for k, v in table.recall.items()},
            "per_class": table.per_class}


DESCRIBERS = {KIND_FRAMES: _describe_videos, KIND_FLOW: _describe_videos,
              KIND_ASSIGNMENTS: _describe_assignments, KIND_FEATURES: _describe_features,
              KIND_RETRIEVAL: _describe_retrieval}


def _video_rows(h5: ArtifactFile, kind: str) -> list[dict[str, Any]]:
    """One dict per video: the index table of frames/flow, or the ids, labels and split (and
    chosen cluster) of features and assignments."""
    if kind in (KIND_FRAMES, KIND_FLOW):
        table = read_video_table(h5)
        rows = [table.row(i) for i in range(len(table))]
        for row, memberships in zip(rows, table.splits.tolist()):
            row["splits"] = {name: MEMBERSHIP_NAMES[code]
                             for name, code in zip(table.split_names, memberships)}
        return rows
    if kind == KIND_FEATURES:
        stored = read_features(h5, vectors=False)
        return [{"video_id": str(v), "label": int(label), "split": str(split)}
                for v, label, split in zip(stored.video_ids, stored.labels, stored.split)]
    if kind == KIND_ASSIGNMENTS:
        found = read_assignments(h5)
        return [{"video_id": str(v), "label": int(label), "cluster": int(cluster)}
                for v, label, cluster in zip(found.video_ids, found.labels, found.chosen)]
    raise ConfigError(f"--videos: a {kind} artifact has no per-video table; frames, flow, "
                      "features and assignments artifacts have one")


def _describe_hdf5(path: Path, videos: bool) -> dict[str, Any]:
    with open_artifact(path) as h5:
        header = read_header(h5)
        kind = header["kind"]
        if kind not in DESCRIBERS:
            raise ArtifactError(f"{path} is a {kind!r} artifact, which this slic cannot show")
        return {
            "path": str(path),
            "kind": kind,
            "schema_version": header["schema_version"],
            "file_size": Path(path).stat().st_size,
            "fingerprint": header["fingerprint"],
            "content_digest": header["content_digest"],
            "provenance": read_provenance(h5),
            **DESCRIBERS[kind](h5),
            **({"videos": _video_rows(h5, kind)} if videos else {}),
        }


# How deep a checkpoint's values are shown: slic's own are nested a few levels; a crafted
# pickle may nest thousands, past what Python (and the JSON writer) can recurse.
PLAIN_DEPTH = 32


def _plain(value: Any, depth: int = 0) -> Any:
    """A checkpoint value made JSON-able: tensors as their dtype and shape, containers past
    PLAIN_DEPTH levels as "...", anything else as its short repr."""
    if isinstance(value, TensorInfo):
        return {"tensor": value.dtype, "shape": list(value.shape)}
    if isinstance(value, (dict, list, tuple)) and depth >= PLAIN_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {str(k) if isinstance(k, (str, int, float, bool)) or k is None else quoted(k):
                _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else \
        quoted(value)


def _describe_checkpoint(path: Path) -> dict[str, Any]:
    """A torch checkpoint: what it holds, its epoch, architecture and parameter counts."""
    saved = read_checkpoint_structure(path)
    if not isinstance(saved, dict):
        raise ArtifactError(f"{path} holds a {type(saved).__name__}, not a dict of weights "
                            "and settings: not a slic checkpoint")
    weights = saved["model"] if isinstance(saved.get("model"), dict) else saved
    tensors = {str(k): v for k, v in weights.items() if isinstance(v, TensorInfo)}
    if not tensors:
        raise ArtifactError(f"{path} holds no model weights (no tensors in it or in its "
                            "'model' entry): not a slic checkpoint")
    config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    parts = Counter(name.split(".")[0] for name in tensors)
    return {
        "path": str(path), "kind": "checkpoint", "file_size": Path(path).stat().st_size,
        "contents": [str(k) for k in saved],
        "arch": _plain(saved.get("arch", config.get("arch"))),
        **{key: _plain(saved.get(key)) for key in ("epoch", "criterion", "value")},
        "resumable": "optimizer" in saved,
        "compared_with": _plain(saved.get("compared_with")),  # a random-init baseline's run
        "slic_version": _plain(saved.get("slic_version")),
        **{f"num_{key}": count for key, count in tensor_counts(tensors).items()},
        "parameters_by_part": {part: tensor_counts({k: v for k, v in tensors.items()
                                                    if k.split(".")[0] == part})["parameters"]
                               for part in parts},
        "config": _plain(config),
        "run_config": _plain(saved.get("run_config", {})),
        "tensors": [{"name": k, "dtype": v.dtype, "shape": list(v.shape)}
                    for k, v in tensors.items()],
    }


def _describe_results(path: Path) -> dict[str, Any]:
    """A stage's results.json (linear probe, fine-tuning): its numbers, as written."""
    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{path} is not a readable results.json ({error})") from None
    except RecursionError:
        raise ArtifactError(f"{path} is not a results.json: its JSON is nested too deeply "
                            "to read") from None
    if not isinstance(results, dict) or "stage" not in results:
        raise ArtifactError(f"{path} is JSON but not a slic results file (no 'stage' key)")
    rows = results.get("per_class") or []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ArtifactError(f"{path}: 'per_class' is not a list of rows (objects), as slic "
                            "writes it; it is damaged or was not written by slic")
    described = {"path": str(path), "kind": "results", "file_size": Path(path).stat().st_size}
    return {**described, **{key: value for key, value in results.items()
                            if key not in described}}


def describe(path: Path, videos: bool = False) -> dict[str, Any]:
    """Everything `slic inspect` shows, as one JSON-able dict; `videos` adds the per-video
    table of an HDF5 artifact."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        found = _describe_results(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        found = _describe_checkpoint(path)
    else:
        return _describe_hdf5(path, videos)  # its errors say what a missing path needs
    if videos:
        raise ConfigError(f"--videos: {path} is a {found['kind']} file, which has no "
                          "per-video table; frames, flow, features and assignments have one")
    return found
