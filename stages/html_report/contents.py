"""What a run folder holds, found and read for its report.

A pretraining run (`<dataset>/runs/<run>/`) holds config.yaml, metrics.jsonl, assignments.h5
(one group per clustering round), features.h5 and best.pt; a random-init baseline
(`<dataset>/random-init/<name>/`) holds best.pt only. The evaluations of either sit below it:
`retrieval/<dataset>-<feature>[-<tag>]/` (features.h5, retrieval.h5, maybe assignments.h5)
and `linear-probe*/`, `finetune*/` (results.json, maybe metrics.jsonl). Where settings made
several folders, `<name>` links the newest; the report shows that one. Everything is optional
except that the folder must hold something a run writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stages.datasets.base import split_caveats
from stages.evaluation.random_init import RandomInit
from stages.html_report.provenance import Origin, file_origins, folder_baseline, run_origin
from stages.io.artifacts import (
    KIND_ASSIGNMENTS,
    KIND_FEATURES,
    KIND_RETRIEVAL,
    Assignments,
    RetrievalTable,
    StoredFeatures,
    open_artifact,
    read_assignment_rounds,
    read_assignments,
    read_features,
    read_retrieval,
)
from stages.io.run_folder import RunFolder
from stages.runtime.errors import ArtifactError
from stages.training.monitor import MetricsLog


@dataclass
class Evaluation:
    """One linear-probe or finetune result folder: its results.json and epoch records."""

    folder: Path
    results: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def title(self) -> str:
        """'Linear probe' or 'Fine-tuning', with the protocol when results.json names it."""
        stage, protocol = self.results.get("stage", ""), self.results.get("protocol")
        name = {"linear-probe": "Linear probe", "finetune": "Fine-tuning"}.get(stage, stage)
        return f"{name} ({protocol} protocol)" if protocol else name

    @property
    def confusion(self) -> np.ndarray | None:
        """The (C, C) int64 confusion matrix of results.json (row = true class), or None."""
        matrix = self.results.get("confusion")
        return None if matrix is None else np.asarray(matrix, dtype=np.int64)

    @property
    def class_names(self) -> list[str]:
        """Class names in confusion-matrix order: results.json's `class_names` (frames.h5's
        names), else, for an older results.json, those of `per_class` put on the matrix rows
        that hold test videos (it lists those classes, in order); a class with no name left
        is its number."""
        matrix = self.confusion
        count = 0 if matrix is None else len(matrix)
        saved = self.results.get("class_names")
        if isinstance(saved, list) and len(saved) == count:
            return [str(name) for name in saved]
        names = [str(i) for i in range(count)]
        listed = [row.get("class") for row in self.results.get("per_class", [])]
        tested = [] if matrix is None else np.flatnonzero(matrix.sum(axis=1)).tolist()
        if len(listed) == len(tested):
            for index, name in zip(tested, listed):
                names[index] = str(name)
        return names


@dataclass
class Retrieval:
    """One retrieval result folder: retrieval.h5, and the frames its videos came from."""

    folder: Path
    table: RetrievalTable
    frames: Path | None
    made: str = ""  # how: clips a video and feature, from the features' source
    warnings: list[str] = field(default_factory=list)  # about the split (`split_caveats`)


@dataclass
class Embedding:
    """Per-video embeddings to map: `features` (N, D) float32, `labels` (N,) int64 true
    classes (-1 unknown), `clusters` (N,) int64 (-1 where the video was not clustered)."""

    source: Path
    description: str
    features: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    clusters: np.ndarray


@dataclass
class RunContents:
    """Everything a report shows of one folder: config (and the file it was read from), the
    run's own provenance, metrics records, clustering rounds, the embedding to map,
    retrievals, evaluations, every file with its bytes, the provenance of each artifact in it
    (later ones included, each under its own name), and what a random-init baseline is."""

    folder: Path
    config: dict[str, Any]
    origin: Origin | None
    records: list[dict[str, Any]]
    rounds: list[tuple[int, Assignments]]
    embedding: Embedding | None
    retrievals: list[Retrieval]
    evaluations: list[Evaluation]
    files: list[tuple[str, int]] = field(default_factory=list)
    artifacts: list[Origin] = field(default_factory=list)
    config_source: str | None = None
    baseline: RandomInit | None = None

    @property
    def pretrain_settings(self) -> dict[str, Any] | None:
        """The pretrain section of the run's own config.yaml; None where the config was read
        elsewhere (an evaluation's command resolved its own) or has none."""
        found = self.config.get("pretrain")
        own = self.config_source == RunFolder(self.folder).config.name
        return found if own and isinstance(found, dict) else None


def newest_folders(parent: Path, marker: Callable[[RunFolder], Path]) -> list[Path]:
    """Subfolders of `parent` holding their `marker` file (for example `RunFolder.results`),
    one per setting's name: where a `<name>` link points to one of several `<name>-<tag>`
    folders, only the link (the newest)."""
    if not parent.is_dir():
        return []
    found = sorted(p for p in parent.iterdir() if marker(RunFolder(p)).is_file())
    linked = {p.resolve() for p in found if p.is_symlink()}
    return [p for p in found if p.is_symlink() or p.resolve() not in linked]


def _features(path: Path, vectors: bool = True) -> StoredFeatures:
    with open_artifact(path, KIND_FEATURES) as h5:
        return read_features(h5, vectors)


def _clusters_of(assignments: Path, video_ids: np.ndarray) -> np.ndarray:
    """The chosen partition of `assignments` for `video_ids` (-1 for videos it lacks)."""
    with open_artifact(assignments, KIND_ASSIGNMENTS) as h5:
        found = read_assignments(h5)
    position = {str(v): i for i, v in enumerate(found.video_ids)}
    rows = np.array([position.get(str(v), -1) for v in video_ids], dtype=np.int64)
    return np.where(rows >= 0, found.chosen[np.maximum(rows, 0)], -1).astype(np.int64)


def _embedding(folder: Path, retrievals: list[Retrieval]) -> Embedding | None:
    """The run's final training embeddings (features.h5, clustered in assignments.h5), else
    those of its first retrieval (train and test videos, clustered if `slic cluster` ran)."""
    candidates = [(RunFolder(folder).features, RunFolder(folder).assignments,
                   "final projections of the training videos (centre clip)")]
    candidates += [(RunFolder(r.folder).features, RunFolder(r.folder).assignments,
                    f"retrieval features ({r.folder.name})") for r in retrievals]
    for features_path, assignments_path, description in candidates:
        if not features_path.is_file():
            continue
        stored = _features(features_path)
        clusters = (_clusters_of(assignments_path, stored.video_ids)
                    if assignments_path.is_file()
                    else np.full(len(stored.video_ids), -1, dtype=np.int64))
        return Embedding(features_path, f"{description}, {stored.feature}",
                         np.asarray(stored.features, dtype=np.float32),
                         np.asarray(stored.labels, dtype=np.int64), stored.class_names,
                         clusters)
    return None


def _retrievals(folder: Path) -> list[Retrieval]:
    found = []
    for result in newest_folders(folder / "retrieval", lambda files: files.retrieval):
        files = RunFolder(result)
        with open_artifact(files.retrieval, KIND_RETRIEVAL) as h5:
            table = read_retrieval(h5)
        stored = (_features(files.features, vectors=False)  # its source and classes
                  if files.features.is_file() else None)
        source = stored.source if stored is not None else {}
        frames = Path(source["frames"]) if "frames" in source else None
        made = (f"{source['clips']} clips a video, {source.get('feature', '?')}"
                if "clips" in source else "features given to retrieve")
        warnings = _retrieval_caveats(table, stored.class_names if stored is not None else [])
        found.append(Retrieval(result, table, frames if frames and frames.is_file() else None,
                               made, warnings))
    return found


def _retrieval_caveats(table: RetrievalTable, class_names: list[str] | None) -> list[str]:
    """`split_caveats` of the queries and gallery of a retrieval, by class name where known."""
    names = list(class_names or [])

    def name(label: int) -> str:
        return names[label] if 0 <= label < len(names) else str(label)

    gallery = [name(int(c)) for c in table.gallery_labels]
    return split_caveats(gallery, [name(int(c)) for c in table.query_labels], gallery)


def _evaluations(folder: Path) -> list[Evaluation]:
    found = []
    for result in newest_folders(folder, lambda files: files.results):
        files = RunFolder(result)
        found.append(Evaluation(result, _results(files.results),
                                MetricsLog(files.metrics).records()))
    return found


def _results(path: Path) -> dict[str, Any]:
    """An evaluation's results.json, or an ArtifactError naming it when it is no JSON object."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = type(error).__name__
        raise ArtifactError(f"{path} is damaged ({reason}); run its evaluation again with "
                            "--force, or remove its folder") from None
    if not isinstance(results, dict):
        raise ArtifactError(f"{path} holds no JSON object; run its evaluation again with "
                            "--force, or remove its folder")
    return results


def _config(folder: Path, evaluations: list[Evaluation],
            baseline: tuple[RandomInit, dict[str, Any]] | None
            ) -> tuple[dict[str, Any], str | None]:
    """The folder's config and the file it was read from (a path below the folder): the run's
    config.yaml, a baseline's encoder settings from its best.pt, else the resolved config of
    the first evaluation's command (its results.json); ({}, None) without any."""
    files = RunFolder(folder)
    if files.config.is_file():
        try:
            config = yaml.safe_load(files.config.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
            raise ArtifactError(f"{files.config} is not readable YAML: the run's config is "
                                "damaged; restore it or train the run again") from None
        return (config if isinstance(config, dict) else {}), files.config.name
    if baseline is not None:
        return baseline[1], files.best.name
    for evaluation in evaluations:
        if isinstance(evaluation.results.get("config"), dict):
            results = RunFolder(evaluation.folder).results
            return evaluation.results["config"], str(results.relative_to(folder))
    return {}, None


def _files(folder: Path) -> list[tuple[str, int]]:
    """Every file below `folder` (not hidden, links not followed): path and size in bytes."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if any(parent.is_symlink() for parent in [path, *path.parents][:len(relative.parts)]):
            continue
        found.append((str(relative), path.stat().st_size))
    return found


def read_run(folder: Path) -> RunContents:
    """Everything a report shows of the run (or baseline) in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not a folder; pass a run folder such as "
                            "<workspace>/<dataset>/runs/<run>")
    evaluations = _evaluations(folder)
    files = RunFolder(folder)
    if not files.is_run() and not evaluations:
        markers = (files.config, files.metrics, files.best, files.checkpoint)
        raise ArtifactError(f"{folder} holds none of {', '.join(p.name for p in markers)} nor "
                            "any evaluation results; pass a run folder such as "
                            "<workspace>/<dataset>/runs/<run>")
    rounds: list[tuple[int, Assignments]] = []
    if files.assignments.is_file():
        with open_artifact(files.assignments, KIND_ASSIGNMENTS) as h5:
            rounds = read_assignment_rounds(h5)
    retrievals = _retrievals(folder)
    baseline = folder_baseline(folder)
    config, config_source = _config(folder, evaluations, baseline)
    listed = _files(folder)
    return RunContents(folder, config, run_origin(folder), MetricsLog(files.metrics).records(),
                       rounds, _embedding(folder, retrievals), retrievals, evaluations, listed,
                       file_origins(folder, [name for name, _ in listed]), config_source,
                       None if baseline is None else baseline[0])
