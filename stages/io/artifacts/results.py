"""The artifacts of the learning stages: cluster assignments, features, retrieval results.

Layouts (attrs, /provenance and atomic writing as in `core`):

    assignments.h5  /partitions/{labels (P, N), chosen (N,), num_clusters (P,), quality JSON},
                    /videos/{video_id, label}; pretraining adds /rounds/epoch_EEEEE/ (same)
    features.h5     /features (N, D) float32 (attrs feature, source JSON),
                    /videos/{video_id, label, split}, /classes/name
    retrieval.h5    /neighbours (Q, K), /similarities (Q, K), /queries/*, /gallery/*,
                    /recall JSON, /per_class JSON
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from stages.io.artifacts.core import STRING, _strings, damage_is_artifact_error

KIND_ASSIGNMENTS = "assignments"


@dataclass
class Assignments:
    """Cluster labels of N videos at every partition, and the one chosen as pseudo-labels.

    `partitions` is (P, N) int64, finest first; `chosen` (N,) int64 holds the pseudo-labels to
    use, described by `chosen_from` ("partition 0", "num_clusters 50"); `quality` holds one dict
    of scores per partition (and, last, for `chosen`) when true labels were known (else
    empty); `labels` is (N,) int64 with -1 where unknown.
    """

    partitions: np.ndarray
    chosen: np.ndarray
    chosen_from: str
    video_ids: np.ndarray
    labels: np.ndarray
    quality: list[dict[str, float]]
    method: str


def _json(h5: h5py.Group, name: str) -> Any:
    """The JSON text of scalar dataset `name` (bytes that are no UTF-8 replaced), parsed."""
    return json.loads(h5[name].asstr(errors="replace")[()])


def write_assignments(h5: h5py.Group, assignments: Assignments) -> None:
    """Write `assignments` into `h5` (a file or a round's group): `/partitions/{labels, chosen,
    num_clusters, quality}` and `/videos/{video_id, label}`."""
    partitions = h5.create_dataset("partitions/labels", data=assignments.partitions)
    partitions.attrs["method"] = assignments.method
    chosen = h5.create_dataset("partitions/chosen", data=assignments.chosen)
    chosen.attrs["chosen_from"] = assignments.chosen_from
    h5.create_dataset("partitions/num_clusters",
                      data=assignments.partitions.max(axis=1) + 1)
    h5.create_dataset("videos/video_id", data=np.asarray(assignments.video_ids, dtype=object),
                      dtype=STRING)
    h5.create_dataset("videos/label", data=assignments.labels)
    h5.create_dataset("partitions/quality", data=json.dumps(assignments.quality), dtype=STRING)


@damage_is_artifact_error
def read_assignments(h5: h5py.Group) -> Assignments:
    """The assignments in `h5` (a file or a round's group), as `write_assignments` wrote them."""
    partitions = h5["partitions/labels"]
    chosen = h5["partitions/chosen"]
    return Assignments(
        partitions=partitions[()], chosen=chosen[()], chosen_from=str(chosen.attrs["chosen_from"]),
        video_ids=_strings(h5["videos/video_id"]), labels=h5["videos/label"][()],
        quality=_json(h5, "partitions/quality"),
        method=str(partitions.attrs["method"]),
    )


def write_assignment_rounds(h5: h5py.File, rounds: list[tuple[int, Assignments]]) -> None:
    """Pretraining's clustering rounds: `/rounds/epoch_EEEEE/` each, the last also at the top
    level (so a run's assignments.h5 reads like `slic cluster`'s)."""
    for epoch, assignments in rounds:
        group = h5.create_group(f"rounds/epoch_{epoch:05d}")
        group.attrs["epoch"] = epoch
        write_assignments(group, assignments)
    write_assignments(h5, rounds[-1][1])


@damage_is_artifact_error
def read_assignment_rounds(h5: h5py.File) -> list[tuple[int, Assignments]]:
    """Every clustering round of a pretraining run, in epoch order (empty for `slic cluster`)."""
    if "rounds" not in h5:
        return []
    return [(int(group.attrs["epoch"]), read_assignments(group))
            for _, group in sorted(h5["rounds"].items())]


KIND_FEATURES = "features"


@dataclass
class StoredFeatures:
    """Per-video features: `features` (N, D) float32; `labels` (N,) int64 (-1 unknown);
    `split` (N,) str ("train" / "test"); `feature` says which output ("projection",
    "backbone"); `source` describes the checkpoint and clip settings they came from."""

    features: np.ndarray
    video_ids: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    feature: str
    source: dict[str, Any] = field(default_factory=dict)


def write_features(h5: h5py.File, stored: StoredFeatures) -> None:
    """Write the (N, D) features as float32, the videos' ids, int64 labels and split, and the
    dataset's class names."""
    data = h5.create_dataset("features", data=stored.features.astype(np.float32))
    data.attrs["feature"] = stored.feature
    data.attrs["source"] = json.dumps(stored.source, default=str)
    h5.create_dataset("videos/video_id", data=np.asarray(stored.video_ids, dtype=object),
                      dtype=STRING)
    h5.create_dataset("videos/label", data=np.asarray(stored.labels, dtype=np.int64))
    h5.create_dataset("videos/split", data=np.asarray(stored.split, dtype=object), dtype=STRING)
    h5.create_dataset("classes/name", data=np.array(stored.class_names, dtype=object),
                      shape=(len(stored.class_names),), dtype=STRING)


@damage_is_artifact_error
def read_features(h5: h5py.File, vectors: bool = True) -> StoredFeatures:
    """The features artifact; `vectors=False` skips the (N, D) matrix (`features` is then
    (N, 0), and `feature_dim` gives D), so a multi-gigabyte file is described at once."""
    data = h5["features"]
    return StoredFeatures(
        features=data[()] if vectors else np.empty((data.shape[0], 0), np.float32),
        video_ids=_strings(h5["videos/video_id"]),
        labels=h5["videos/label"][()], split=_strings(h5["videos/split"]),
        class_names=[str(c) for c in _strings(h5["classes/name"])],
        feature=str(data.attrs["feature"]), source=json.loads(str(data.attrs["source"])))


@damage_is_artifact_error
def feature_dim(h5: h5py.File) -> int:
    """D of a features artifact's (N, D) matrix, without reading it."""
    return int(h5["features"].shape[1])


KIND_RETRIEVAL = "retrieval"


@dataclass
class RetrievalTable:
    """Test-to-train neighbours: `neighbours` (Q, K) int64 rows of the gallery, best first;
    `similarities` (Q, K) float32 cosine; ids and labels of queries and gallery; `recall`
    maps k to R@k; `per_class` holds one dict per query class."""

    neighbours: np.ndarray
    similarities: np.ndarray
    query_ids: np.ndarray
    query_labels: np.ndarray
    gallery_ids: np.ndarray
    gallery_labels: np.ndarray
    recall: dict[int, float]
    per_class: list[dict[str, Any]]


def write_retrieval(h5: h5py.File, table: RetrievalTable) -> None:
    """Write neighbours (Q, K) int64, similarities (Q, K) float32, ids and labels of queries and
    gallery, and recall and per_class as JSON."""
    h5.create_dataset("neighbours", data=table.neighbours.astype(np.int64))
    h5.create_dataset("similarities", data=table.similarities.astype(np.float32))
    for group, ids, labels in (("queries", table.query_ids, table.query_labels),
                               ("gallery", table.gallery_ids, table.gallery_labels)):
        h5.create_dataset(f"{group}/video_id", data=np.asarray(ids, dtype=object), dtype=STRING)
        h5.create_dataset(f"{group}/label", data=np.asarray(labels, dtype=np.int64))
    h5.create_dataset("recall", data=json.dumps({str(k): v for k, v in table.recall.items()}),
                      dtype=STRING)
    h5.create_dataset("per_class", data=json.dumps(table.per_class), dtype=STRING)


@damage_is_artifact_error
def read_retrieval(h5: h5py.File) -> RetrievalTable:
    """The table of retrieval.h5, with the k of `recall` back as ints (JSON keeps strings)."""
    return RetrievalTable(
        neighbours=h5["neighbours"][()], similarities=h5["similarities"][()],
        query_ids=_strings(h5["queries/video_id"]), query_labels=h5["queries/label"][()],
        gallery_ids=_strings(h5["gallery/video_id"]), gallery_labels=h5["gallery/label"][()],
        recall={int(k): v for k, v in _json(h5, "recall").items()},
        per_class=_json(h5, "per_class"))
