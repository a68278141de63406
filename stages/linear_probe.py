"""linear-probe: a linear classifier on frozen backbone features (the paper's linear protocol).

The backbone stays in eval mode (BatchNorm statistics frozen) and is run once: the pooled
features of `train_clips` evenly spaced clips of every training video and `clips` clips of
every test video are cached in features.h5, and the classifier trains on the cache. A test
video's prediction is the softmax averaged over its clips.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from stages import __version__
from stages.clips.evaluation import EvaluationClips
from stages.clips.store import ClipStore
from stages.evaluation.classification import (
    confusion_matrix,
    draw_confusion,
    per_class_accuracy,
    top_k_accuracy,
)
from stages.evaluation.sources import EncoderSource, encoder_source
from stages.io.artifacts import (
    KIND_FEATURES,
    Provenance,
    StoredFeatures,
    artifact_fingerprint,
    read_features,
    write_artifact,
    write_features,
    write_provenance,
)
from stages.linear_probe_config import LinearProbeConfig
from stages.pretrain_config import PretrainConfig
from stages.run_context import RunContext, fingerprint, now
from stages.shared_config import DataConfig, WorkspaceConfig
from stages.training.distributed import Distribution
from stages.training.embedding import embed_clips
from stages.training.video_split import split_rows

__all__ = ["LinearProbeConfig", "LinearProbeResult", "run"]


@dataclass
class LinearProbeResult:
    folder: Path
    top1: float
    top5: float
    per_class: list[dict[str, Any]]
    num_train: int
    num_test: int
    encoder: str
    features_reused: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"stage": "linear-probe", "folder": str(self.folder), "encoder": self.encoder,
                "top1": round(self.top1, 6), "top5": round(self.top5, 6),
                "num_train": self.num_train, "num_test": self.num_test,
                "features_reused": self.features_reused, "per_class": self.per_class,
                "seconds": round(self.seconds, 3)}


def _clip_features(frozen: EncoderSource, settings: LinearProbeConfig, split: int,
                   context: RunContext) -> tuple[StoredFeatures, bool]:
    """Per-clip backbone features of train and test videos, cached in features.h5."""
    path = frozen.folder / "features.h5"
    with h5py.File(frozen.frames, "r") as h5:
        digest = str(h5.attrs.get("content_digest", ""))
    source = {"encoder": frozen.identity, "frames_digest": digest, "split": split,
              "train_clips": settings.train_clips, "clips": settings.clips, **frozen.clip}
    key = fingerprint({"stage": "linear-probe-features", **source})
    if artifact_fingerprint(path) == key and not context.force:
        with h5py.File(path, "r") as h5:
            return read_features(h5), True
    store = ClipStore(frozen.frames)
    train, test = split_rows(store, split)
    parts = []
    for rows, count in ((train, settings.train_clips), (test, settings.clips)):
        clips = EvaluationClips(store, rows, frozen.clip["clip_length"], frozen.clip["stride"],
                                frozen.clip["crop_size"], count)
        parts.append(embed_clips(frozen.encoder, clips, feature="backbone", batch_size=32,
                                 workers=settings.workers, device=torch.device("cpu"),
                                 distribution=Distribution(), progress=context.progress,
                                 autocast={"enabled": False}, average=False))
    columns = store.table.columns
    ids = np.concatenate([np.repeat(columns["video_id"][rows], count) for rows, count in
                          ((train, settings.train_clips), (test, settings.clips))])
    labels = np.concatenate([np.repeat(columns["label"][rows], count) for rows, count in
                             ((train, settings.train_clips), (test, settings.clips))])
    split_names = np.array(["train"] * (len(train) * settings.train_clips)
                           + ["test"] * (len(test) * settings.clips), dtype=object)
    features = np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts])
    stored = StoredFeatures(features, ids, labels.astype(np.int64), split_names,
                            list(store.table.class_names), "backbone", source)
    started = now()
    with write_artifact(path, KIND_FEATURES, key) as h5:
        write_features(h5, stored)
        write_provenance(h5, Provenance(context.command, context.config, __version__,
                                        [{"path": str(frozen.frames)}], started, now()))
    return stored, False


def train_linear_classifier(features: np.ndarray, labels: np.ndarray, classes: int,
                            settings: LinearProbeConfig) -> torch.nn.Linear:
    """Adam on cross-entropy; weights N(0, 0.01), bias 0, as the paper's code. (N, D), (N,)."""
    generator = torch.Generator().manual_seed(settings.seed)
    classifier = torch.nn.Linear(features.shape[1], classes)
    with torch.no_grad():
        classifier.weight.normal_(0.0, 0.01, generator=generator)
        classifier.bias.zero_()
    optimiser = torch.optim.Adam(classifier.parameters(), lr=settings.lr,
                                 weight_decay=settings.weight_decay)
    inputs, targets = torch.from_numpy(features), torch.from_numpy(labels)
    for _ in range(settings.epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            loss = torch.nn.functional.cross_entropy(classifier(inputs[batch]), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return classifier


def run(settings: LinearProbeConfig, pretrain: PretrainConfig, data: DataConfig,
        workspace: WorkspaceConfig, context: RunContext | None = None,
        run_dir: Path | None = None, checkpoint: Path | None = None,
        random_init: bool = False, cross: str | None = None) -> LinearProbeResult:
    """Probe a checkpoint (or a random-init encoder); write results beside it."""
    context = context or RunContext()
    clock = time.perf_counter()
    frozen = encoder_source(pretrain, data, workspace, run_dir, checkpoint, random_init,
                            "linear-probe", cross)
    stored, reused = _clip_features(frozen, settings, data.split, context)
    train = stored.split == "train"
    classes = len(stored.class_names)
    classifier = train_linear_classifier(stored.features[train], stored.labels[train], classes,
                                         settings)
    test_features = stored.features[~train].reshape(-1, settings.clips,
                                                    stored.features.shape[1])
    test_labels = stored.labels[~train][::settings.clips]
    with torch.no_grad():
        logits = classifier(torch.from_numpy(test_features))
        probabilities = torch.softmax(logits, dim=-1).mean(dim=1).numpy()
    matrix = confusion_matrix(probabilities.argmax(axis=1), test_labels, classes)
    per_class = per_class_accuracy(matrix, stored.class_names)
    result = LinearProbeResult(frozen.folder, top_k_accuracy(probabilities, test_labels, 1),
                               top_k_accuracy(probabilities, test_labels, min(5, classes)),
                               per_class, int(train.sum() // settings.train_clips),
                               len(test_labels), frozen.description, reused)
    draw_confusion(matrix, stored.class_names, frozen.folder / "confusion.png",
                   f"linear probe, top-1 {result.top1:.3f}")
    torch.save({"weight": classifier.weight.detach(), "bias": classifier.bias.detach()},
               frozen.folder / "classifier.pt")
    result.seconds = time.perf_counter() - clock
    temporary = frozen.folder / ".results.json.writing"
    temporary.write_text(json.dumps({**result.summary(), "confusion": matrix.tolist(),
                                     "command": context.command}, indent=1))
    os.replace(temporary, frozen.folder / "results.json")
    return result
