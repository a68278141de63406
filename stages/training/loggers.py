"""Where a training run's records go besides metrics.jsonl: nowhere (`none`), or TensorBoard
event files in `<run>/tensorboard/` (`tensorboard`; needs the extra `slic[tensorboard]`).

metrics.jsonl stays the source of truth; a logger only mirrors it: the scalars of every
epoch, then the hyperparameters with the final metrics, and the final embeddings with their
class and cluster labels for TensorBoard's embedding projector. Only the main process logs.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stages.runtime.choices import LOGGER_NAMES
from stages.runtime.errors import ConfigError
from stages.training.curves import CURVES, NOT_PLOTTED

TENSORBOARD_FOLDER = "tensorboard"


@dataclass
class LoggedEmbeddings:
    """The run's final embeddings: `features` (N, D) float32, and per video its id, class
    name and cluster (pseudo-label) of the final clustering; `step` is the epoch count."""

    features: np.ndarray
    video_ids: list[str]
    classes: list[str]
    clusters: np.ndarray
    step: int


class RunLogger(Protocol):
    """What a training run sends to a logger."""

    def log_epoch(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl record: its numbers, at step `record["epoch"]`."""

    def log_final(self, hyperparameters: dict[str, Any], metrics: dict[str, Any],
                  embeddings: LoggedEmbeddings | None) -> None:
        """The run's settings with its final metrics, and its final embeddings."""

    def close(self) -> None:
        """Flush and release files."""


class NullLogger:
    """Logs nothing: metrics.jsonl and the PNG plots are the whole record."""

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Discard the record."""
        return None

    def log_final(self, hyperparameters: dict[str, Any], metrics: dict[str, Any],
                  embeddings: LoggedEmbeddings | None) -> None:
        """Discard the final metrics and embeddings."""
        return None

    def close(self) -> None:
        """Nothing to release."""
        return None


def scalar_tag(key: str) -> str:
    """TensorBoard tag of a metrics.jsonl key: grouped as the PNG plots are (loss/...,
    recall/..., clusters/...), `other/<key>` for keys no plot draws."""
    for curve in CURVES:
        if key in curve.keys:
            return f"{curve.name.removesuffix('.png')}/{key}"
    return f"other/{key}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _hparam(value: Any) -> int | float | str | bool:
    """A config value as TensorBoard's hparams accept it (no None, lists or dicts)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "none" if value is None else str(value)


class TensorBoardLogger:
    """Event files in `folder`. A run resumed at epoch `start` drops the events of that epoch
    and later (TensorBoard's purge step), as metrics.jsonl drops their records; a new run
    (`start` 0) begins with an empty folder."""

    def __init__(self, folder: Path, start: int) -> None:
        require_logger("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        if start == 0 and folder.is_dir():
            shutil.rmtree(folder)
        self.folder = folder
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=start)

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Write every finite number of `record` (NOT_PLOTTED keys aside) as a scalar at step
        `record["epoch"]`, then flush."""
        step = int(record["epoch"])
        for key, value in record.items():
            number = _number(value)
            if key not in NOT_PLOTTED and number is not None:
                self.writer.add_scalar(scalar_tag(key), number, step)
        self.writer.flush()

    def log_final(self, hyperparameters: dict[str, Any], metrics: dict[str, Any],
                  embeddings: LoggedEmbeddings | None) -> None:
        """Write the hyperparameters with the finite final metrics (`final/<key>`), and the
        embeddings with class, cluster and video id for the projector."""
        numbers = {f"final/{key}": _number(value) for key, value in metrics.items()}
        self.writer.add_hparams({key: _hparam(value) for key, value in hyperparameters.items()},
                                {key: value for key, value in numbers.items()
                                 if value is not None},
                                run_name=".", global_step=embeddings.step if embeddings else None)
        if embeddings is not None:
            rows = [[name, str(int(cluster)), video] for name, cluster, video in
                    zip(embeddings.classes, embeddings.clusters, embeddings.video_ids)]
            self.writer.add_embedding(np.asarray(embeddings.features, dtype=np.float32),
                                      metadata=rows, metadata_header=["class", "cluster", "video"],
                                      global_step=embeddings.step, tag="final_embeddings")
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event files."""
        self.writer.close()


def require_logger(name: str) -> None:
    """Stop with a clear message, before any work, when logger `name` cannot run here."""
    if name not in LOGGER_NAMES:
        raise ConfigError(f"unknown logger {name!r}; choose one of {', '.join(LOGGER_NAMES)}")
    if name == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("the tensorboard logger needs the tensorboard package: pip install "
                          "'slic[tensorboard]' (or set pretrain.logger to none)")


def open_logger(name: str, run_folder: Path, start: int) -> RunLogger:
    """The logger called `name` for the run in `run_folder`, resumed at epoch `start`."""
    require_logger(name)
    if name == "tensorboard":
        return TensorBoardLogger(run_folder / TENSORBOARD_FOLDER, start)
    return NullLogger()
