"""Where a report's folder and its files came from, each under its own name.

The run's own provenance is its checkpoint.pt's (the command that ran it, slic's version, the
inputs, and when the pretraining started and finished) beside its config.yaml; a random-init
baseline's is the recipe its best.pt holds. Every artifact in the folder, those written later
by other stages included (retrieve's features.h5 and retrieval.h5, an evaluation's
results.json), keeps its own: it is listed apart, never shown as the run's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stages.evaluation.random_init import RandomInit, saved_baseline
from stages.io.artifacts import open_artifact, read_provenance
from stages.io.checkpoint_reader import read_checkpoint_structure
from stages.io.run_folder import RunFolder
from stages.runtime.errors import ArtifactError


@dataclass
class Origin:
    """Where one thing came from: `name` (the run's folder name, or a file's path below the
    folder), the `command` that made it, `slic_version`, `started` and `finished` (UTC ISO
    8601; None where not recorded), the `inputs` it read (provenance entries: path, size,
    checksum) and a `note` on where the times were read when not from the thing itself."""

    name: str
    command: str | None = None
    slic_version: str | None = None
    started: str | None = None
    finished: str | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None


def saved_structure(path: Path) -> dict[str, Any]:
    """A checkpoint's saved dict read without unpickling; {} when the file is missing or is
    no torch checkpoint of a dict."""
    if not path.is_file():
        return {}
    try:
        saved = read_checkpoint_structure(path)
    except ArtifactError:
        return {}
    return saved if isinstance(saved, dict) else {}


def _modified(path: Path) -> str | None:
    """When `path` was last written (UTC ISO 8601), None when it does not exist."""
    if not path.is_file():
        return None
    when = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return when.isoformat(timespec="seconds")


def run_origin(folder: Path) -> Origin | None:
    """The pretraining run's own provenance, from its checkpoint.pt; where an older slic did not
    record the times there, the times config.yaml (written as the run started) and
    checkpoint.pt (after its last epoch) were last written, with a note that says so. None
    for a folder with neither file (a random-init baseline)."""
    files = RunFolder(folder)
    saved = saved_structure(files.checkpoint)
    if not saved and not files.config.is_file():
        return None
    inputs = saved.get("inputs")
    origin = Origin(folder.name, saved.get("command"), saved.get("slic_version"),
                    saved.get("started_at"), saved.get("finished_at"),
                    inputs if isinstance(inputs, list) else [])
    if origin.started is None:
        origin.started = _modified(files.config)
        origin.finished = _modified(files.checkpoint) if saved.get("finished") else None
        origin.note = (f"not recorded in {files.checkpoint.name}: the times {files.config.name} "
                       f"and {files.checkpoint.name} were last written")
    return origin


def folder_baseline(folder: Path) -> tuple[RandomInit, dict[str, Any]] | None:
    """The random-init baseline the folder's best.pt holds, and its encoder settings (the
    checkpoint's config); None for any other folder."""
    saved = saved_structure(RunFolder(folder).best)
    baseline = saved_baseline(saved)
    return None if baseline is None else (baseline, dict(saved["config"]))


def _artifact_origin(path: Path, name: str) -> Origin | None:
    try:
        with open_artifact(path) as h5:
            found = read_provenance(h5)
    except (ArtifactError, KeyError, ValueError):
        return None  # no provenance to show; the files section still lists it
    inputs = found.get("inputs")
    return Origin(name, found.get("command"), found.get("slic_version"),
                  found.get("started") or None, found.get("finished") or None,
                  inputs if isinstance(inputs, list) else [])


def _results_origin(path: Path, name: str) -> Origin | None:
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(results, dict):
        return None
    return Origin(name, results.get("command"), note=f"{path.name} records no times")


def file_origins(folder: Path, names: list[str]) -> list[Origin]:
    """The provenance of each HDF5 artifact and results.json among `names` (paths below
    `folder`), each under its own name, in the order given."""
    results = RunFolder(folder).results.name
    found = []
    for name in names:
        path = folder / name
        if path.suffix == ".h5":
            found.append(_artifact_origin(path, name))
        elif path.name == results:
            found.append(_results_origin(path, name))
    return [origin for origin in found if origin is not None]
