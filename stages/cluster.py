"""cluster: FINCH partitions (or k-means) of video features, and their quality against labels."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages import __version__
from stages.cluster_config import ClusterConfig
from stages.clustering.metrics import cluster_quality
from stages.clustering.partitions import cluster_features
from stages.io.artifacts import (
    KIND_ASSIGNMENTS,
    KIND_FEATURES,
    Assignments,
    Provenance,
    artifact_fingerprint,
    check_output,
    file_checksum,
    open_artifact,
    read_assignments,
    read_features,
    write_artifact,
    write_assignments,
    write_content_digest,
    write_provenance,
)
from stages.io.features import load_features
from stages.runtime.context import RunContext, fingerprint, now
from stages.runtime.errors import ConfigError
from stages.runtime.run_lock import artifact_lock
from stages.runtime.settings import output_relevant
from stages.runtime.workspace import assignments_beside


@dataclass
class ClusterResult:
    """What `cluster.run` did: the assignments written (or found up to date), the clusters of each
    partition and, where labels were known, their quality."""

    output: Path
    num_videos: int
    num_clusters: list[int]
    chosen_from: str
    num_chosen: int
    quality: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "written"  # or "up to date": the same features and settings made it before
    made: str = ""  # what was clustered: method, rows, and the features' clips a video

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `output`, `status`, `num_clusters` (one per
        partition), `chosen_from`, `num_chosen_clusters` and `quality` (one dict per partition, then
        one for the chosen labels) and `made` (what was clustered: method, rows, clips a
        video)."""
        return {"stage": "cluster", "output": str(self.output), "status": self.status,
                "made": self.made, "num_videos": self.num_videos,
                "num_clusters": self.num_clusters, "chosen_from": self.chosen_from,
                "num_chosen_clusters": self.num_chosen,
                "quality": self.quality, "seconds": round(self.seconds, 3)}


def _stored_result(output: Path, seconds: float) -> ClusterResult:
    """The result of an up-to-date assignments artifact, read back from it."""
    with open_artifact(output, KIND_ASSIGNMENTS) as h5:
        stored = read_assignments(h5)
    return ClusterResult(output, stored.partitions.shape[1],
                         [int(c) for c in stored.partitions.max(axis=1) + 1],
                         stored.chosen_from, int(stored.chosen.max()) + 1, stored.quality,
                         seconds, status="up to date")


def run(settings: ClusterConfig, features_path: Path, *, out: Path | None = None,
        context: RunContext | None = None) -> ClusterResult:
    """Cluster the features in `features_path` and write the assignments to `out` (default:
    `<features name>.assignments.h5` beside them, so it never lands on a pretraining run's own
    assignments.h5). An output made from the same features and settings is up to date and
    read back (`context.force` redoes it)."""
    context = (context or RunContext()).running(cluster=settings)
    output = Path(out) if out is not None else assignments_beside(features_path)
    check_output(output, KIND_ASSIGNMENTS, [Path(features_path)])
    with artifact_lock(output, "cluster"):  # a second writer of `output` is refused
        return _cluster(settings, Path(features_path), output, context)


def _cluster(settings: ClusterConfig, features_path: Path, output: Path,
             context: RunContext) -> ClusterResult:
    """`run` once the lock of `output` is held."""
    started, clock = now(), time.perf_counter()
    features_checksum = file_checksum(Path(features_path))
    key = fingerprint({"stage": "cluster", "settings": output_relevant(settings),
                       "features": features_checksum})
    made = _how_made(Path(features_path), settings)
    if not context.force and artifact_fingerprint(output) == key:
        stored = _stored_result(output, time.perf_counter() - clock)
        stored.made = made
        return stored
    found = load_features(Path(features_path))
    if settings.split != "all":
        if found.split is None:
            raise ConfigError(f"--split {settings.split} needs a 'split' array in "
                              f"{features_path}; use --split all")
        found = found.select(found.split == settings.split)
        if len(found.features) < 2:
            names = ", ".join(sorted({str(v) for v in load_features(features_path).split}))
            raise ConfigError(f"--split {settings.split} leaves {len(found.features)} rows of "
                              f"{features_path} (its split values: {names}); choose one of "
                              "them or --split all")
    clustering = cluster_features(found.features, settings.method, settings.partition,
                                  settings.num_clusters, settings.nn, settings.seed,
                                  settings.ensure_early_exit)
    partitions, chosen = clustering.partitions, clustering.chosen
    quality = ([] if found.labels is None else
               [cluster_quality(found.labels, p).as_dict() for p in [*partitions, chosen]])
    count = len(found.features)
    video_ids = (found.video_ids if found.video_ids is not None
                 else np.array([str(i) for i in range(count)]))
    labels = (np.asarray(found.labels, dtype=np.int64) if found.labels is not None
              else np.full(count, -1, dtype=np.int64))
    with write_artifact(output, KIND_ASSIGNMENTS, key) as h5:
        write_assignments(h5, Assignments(partitions, chosen, clustering.chosen_from, video_ids,
                                          labels, quality, settings.method))
        digest = hashlib.blake2b(partitions.tobytes(), digest_size=16).hexdigest()
        write_content_digest(h5, digest)
        inputs = [{"path": str(features_path), "size": Path(features_path).stat().st_size,
                   "checksum": features_checksum}]
        write_provenance(h5, Provenance(context.command, context.config, __version__, inputs,
                                        started, now()))
    return ClusterResult(output, count, clustering.num_clusters, clustering.chosen_from,
                         int(chosen.max()) + 1, quality, time.perf_counter() - clock,
                         made=made)


def _how_made(features_path: Path, settings: ClusterConfig) -> str:
    """What the partitions are made from: the method, the rows and, for slic's features.h5,
    the clips a video and the feature it holds (so that its NMI can be told from another's)."""
    rows = "every row" if settings.split == "all" else f"the {settings.split} rows"
    made = f"{settings.method} on {rows} of {features_path.name}"
    if features_path.suffix == ".h5":
        with open_artifact(features_path, KIND_FEATURES) as h5:
            source = read_features(h5, vectors=False).source  # attrs, not the matrix
        if "clips" in source:
            made += f" ({source['clips']} clips a video, {source.get('feature', '?')})"
    return made
