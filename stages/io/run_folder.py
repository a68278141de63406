"""The files of a folder slic writes results in, and the only place their names are spelled:
a pretraining run (config.yaml, checkpoint.pt, best.pt, metrics.jsonl, assignments.h5,
features.h5, the PNG plots, report.html) and the evaluation folders inside it (features.h5,
retrieval.h5, results.json, metrics.jsonl and, for fine-tuning, checkpoints; slic search's
index.slic-index). Each is
written atomically by the main process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stages import __version__
from stages.io.artifacts import (
    KIND_ASSIGNMENTS,
    KIND_FEATURES,
    Assignments,
    Provenance,
    StoredFeatures,
    open_artifact,
    write_artifact,
    write_assignment_rounds,
    write_features,
    write_provenance,
)
from stages.io.artifacts import (
    read_assignment_rounds as _read_rounds,
)
from stages.runtime.context import RunContext, fingerprint, now


@dataclass(frozen=True)
class RunFolder:
    """The files of one run or results folder at `path` (paths; they may not exist yet)."""

    path: Path

    @property
    def checkpoint(self) -> Path:
        """checkpoint.pt: the latest state, to resume from."""
        return self.path / "checkpoint.pt"

    @property
    def best(self) -> Path:
        """best.pt: the weights chosen by the run's criterion."""
        return self.path / "best.pt"

    @property
    def metrics(self) -> Path:
        """metrics.jsonl: one JSON record per epoch."""
        return self.path / "metrics.jsonl"

    @property
    def assignments(self) -> Path:
        """assignments.h5: cluster assignments (every round, for a pretraining run)."""
        return self.path / "assignments.h5"

    @property
    def features(self) -> Path:
        """features.h5: per-video features."""
        return self.path / "features.h5"

    @property
    def config(self) -> Path:
        """config.yaml: the run's resolved config."""
        return self.path / "config.yaml"

    @property
    def retrieval(self) -> Path:
        """retrieval.h5: test-to-train neighbours and R@k."""
        return self.path / "retrieval.h5"

    @property
    def results(self) -> Path:
        """results.json: an evaluation's summary, confusion matrix, command and config."""
        return self.path / "results.json"

    @property
    def report(self) -> Path:
        """report.html: the folder's self-contained report."""
        return self.path / "report.html"

    @property
    def classifier(self) -> Path:
        """The cached linear probe's classifier weights."""
        return self.path / "classifier.pt"

    @property
    def search_index(self) -> Path:
        """index.slic-index: slic search's index of the folder's features.h5."""
        return self.path / "index.slic-index"

    @property
    def confusion(self) -> Path:
        """confusion.png: an evaluation's confusion matrix."""
        return self.path / "confusion.png"

    def is_run(self) -> bool:
        """Whether the folder holds what a run (or random-init baseline) leaves: its config,
        metrics or a checkpoint."""
        return any(p.is_file() for p in (self.config, self.metrics, self.best, self.checkpoint))

    def made_by_slic(self) -> bool:
        """Whether the folder is new or empty, or holds a run slic wrote: a checkpoint, or a
        config.yaml with the sections slic writes (a folder of someone else's files with the
        same names is not one, and a run must not write over them)."""
        if not self.path.exists():
            return True
        if not self.path.is_dir():
            return False
        # slic's own hidden files (the run lock, a temporary .writing file) mark no content
        if all(entry.name.startswith(".") for entry in self.path.iterdir()):
            return True
        if self.checkpoint.is_file() or self.best.is_file():
            return True
        try:
            written = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return False
        return isinstance(written, dict) and {"workspace", "data", "compute"} <= set(written)

    def saved_checkpoint(self) -> Path | None:
        """best.pt, else checkpoint.pt, else None when the folder holds neither."""
        return next((p for p in (self.best, self.checkpoint) if p.is_file()), None)


def runs_with_checkpoints(folder: Path) -> list[Path]:
    """The run folders directly under `folder` that hold a checkpoint.pt."""
    if not Path(folder).is_dir():
        return []
    return [p for p in Path(folder).iterdir() if RunFolder(p).checkpoint.is_file()]


def write_config(folder: RunFolder, config: dict[str, Any]) -> None:
    """Write `config` as the folder's config.yaml (keys in their order), atomically."""
    folder.path.mkdir(parents=True, exist_ok=True)
    temporary = folder.config.with_name(".config.yaml.writing")
    temporary.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(temporary, folder.config)


def _provenance(context: RunContext, inputs: list[dict[str, Any]], started: str) -> Provenance:
    return Provenance(context.command, context.config, __version__, inputs, started, now())


def record_round(folder: RunFolder, epoch: int, assignments: Assignments, context: RunContext,
                 inputs: list[dict[str, Any]]) -> None:
    """Add the clustering round of `epoch` to assignments.h5, replacing rounds of that epoch
    or later (a resumed run redoes them)."""
    started = now()
    kept = []
    if folder.assignments.is_file():
        with open_artifact(folder.assignments, KIND_ASSIGNMENTS) as h5:
            kept = [(e, a) for e, a in _read_rounds(h5) if e < epoch]
    rounds = [*kept, (epoch, assignments)]
    key = fingerprint({"rounds": [(e, a.chosen.tolist()) for e, a in rounds]})
    with write_artifact(folder.assignments, KIND_ASSIGNMENTS, key) as h5:
        write_assignment_rounds(h5, rounds)
        write_provenance(h5, _provenance(context, inputs, started))


def record_features(folder: RunFolder, stored: StoredFeatures, context: RunContext,
                    inputs: list[dict[str, Any]]) -> None:
    """Write the run's features.h5 with provenance, atomically; its fingerprint covers the features'
    source and video ids."""
    started = now()
    key = fingerprint({"source": stored.source, "videos": list(map(str, stored.video_ids))})
    with write_artifact(folder.features, KIND_FEATURES, key) as h5:
        write_features(h5, stored)
        write_provenance(h5, _provenance(context, inputs, started))
