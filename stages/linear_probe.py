"""linear-probe: a linear classifier on a frozen backbone (the paper's linear protocol).

`protocol: windows` (default) is the paper's code's (CoCLR's): the classifier trains on random
augmented windows through the frozen model, kept in eval mode (BatchNorm statistics frozen, no
dropout), Adam, batch 32, 150 epochs with lr x0.1 at 60 and 100, best epoch on a validation
share; the test averages the softmax over windows x crops views. It shares the fine-tuning
trainer (`stages.training.classification`) and so runs on GPUs and under torchrun.

`protocol: cached` is the fast variant: the pooled features of `train_clips` evenly spaced
clips of every training video and `windows` clips of every test video are computed once and
cached in features.h5, and the classifier trains on the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages import __version__
from stages.clips.fixed_windows import EvaluationClips
from stages.clips.store import ClipStore
from stages.datasets.base import split_caveats
from stages.evaluation.classification import (
    confusion_matrix,
    per_class_accuracy,
    top_k_accuracy,
)
from stages.evaluation.random_init import RandomInit, baseline_summary
from stages.evaluation.sources import (
    EncoderSource,
    encoder_source,
    evaluated_frames,
    require_labelled,
)
from stages.io.artifacts import (
    KIND_FEATURES,
    Provenance,
    StoredFeatures,
    artifact_fingerprint,
    content_digest_of,
    open_artifact,
    read_features,
    write_artifact,
    write_features,
    write_provenance,
)
from stages.io.run_folder import RunFolder
from stages.linear_probe_config import LINEAR_PROBE_RESUMABLE, LinearProbeConfig
from stages.pretrain_config import PretrainConfig
from stages.runtime.context import RunContext, fingerprint, now
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant
from stages.runtime.workspace import point_latest, settings_folder
from stages.training.classification import ClassifierRecipe, train_classifier, write_results
from stages.training.compute import Compute, computing
from stages.training.embedding import embed_clips
from stages.training.video_split import split_rows

__all__ = ["LinearProbeConfig", "LinearProbeResult", "run"]

NEEDS_LABELS = ("linear-probe trains and tests a classifier of the videos' classes, so it needs "
                "labelled ones")


@dataclass
class LinearProbeResult:
    """What `linear_probe.run` did: the results folder, test top-1/top-5, accuracy per class, the
    video counts, whether cached features were reused, the class names (frames.h5's, in label
    order) and the random-init baseline when the encoder was one."""

    folder: Path
    protocol: str
    top1: float
    top5: float
    per_class: list[dict[str, Any]]
    num_train: int
    num_test: int
    encoder: str
    features_reused: bool = False
    best_epoch: int | None = None
    seconds: float = 0.0
    class_names: list[str] = field(default_factory=list)
    random_init: RandomInit | None = None
    made: str = ""  # how: the protocol and the clips of a training and of a test video
    warnings: list[str] = field(default_factory=list)  # about the split (`split_caveats`)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints and results.json holds: `folder`, `protocol`,
        `encoder`, `random_init` (what the baseline encoder is; None for a trained one),
        `random_init_seed`, `top1`, `top5` (shares, 0..1), `num_train`, `num_test`,
        `features_reused`, `best_epoch` (None for the cached protocol), `made` (how: protocol
        and clips), `warnings` (about the split), `per_class` and `class_names` (the confusion
        matrix's rows and columns, in order)."""
        return {"stage": "linear-probe", "folder": str(self.folder), "protocol": self.protocol,
                "encoder": self.encoder, **baseline_summary(self.random_init),
                "top1": round(self.top1, 6),
                "top5": round(self.top5, 6), "num_train": self.num_train,
                "num_test": self.num_test, "features_reused": self.features_reused,
                "best_epoch": self.best_epoch, "made": self.made, "warnings": self.warnings,
                "per_class": self.per_class, "class_names": self.class_names,
                "seconds": round(self.seconds, 3)}


def run(settings: LinearProbeConfig, data: DataConfig, workspace: WorkspaceConfig, *,
        pretrain: PretrainConfig | None = None, context: RunContext | None = None,
        run_dir: Path | None = None, checkpoint: Path | None = None,
        random_init: bool = False, cross: str | None = None, resume: bool = False,
        compute_settings: ComputeConfig | None = None, random_init_seed: int | None = None
        ) -> LinearProbeResult:
    """Probe a checkpoint (or a random-init encoder, drawn under `random_init_seed`, else the
    compared run's seed); results go to `<run>/linear-probe/` (`linear-probe-cached/` for the
    cached protocol)."""
    context = (context or RunContext()).running(
        linear_probe=settings, pretrain=pretrain, data=data, workspace=workspace,
        compute=compute_settings or ComputeConfig())
    clock = time.perf_counter()
    stage = "linear-probe" if settings.protocol == "windows" else "linear-probe-cached"
    with computing(compute_settings or ComputeConfig()) as compute:
        require_labelled(evaluated_frames(workspace, data, run_dir=run_dir,
                                          checkpoint=checkpoint, random_init=random_init,
                                          cross=cross), NEEDS_LABELS)
        frozen = encoder_source(output_relevant(pretrain or PretrainConfig()), data, workspace,
                                run_dir=run_dir, checkpoint=checkpoint,
                                random_init=random_init, random_init_seed=random_init_seed,
                                stage=stage, cross=cross)
        if settings.protocol == "cached":
            # Other settings sit beside earlier results; linear-probe-cached links the newest.
            frozen.folder = settings_folder(frozen.folder.parent, frozen.folder.name,
                                            output_relevant(settings))
        frozen.encoder.to(compute.device, memory_format=compute.memory_format)
        if settings.protocol == "windows":
            return _windows_protocol(settings, frozen, data.split, compute, context, resume,
                                     clock)
        return _cached_protocol(settings, frozen, data.split, compute, context, clock)


def _windows_protocol(settings: LinearProbeConfig, frozen: EncoderSource, split: int,
                      compute: Compute, context: RunContext, resume: bool, started: float
                      ) -> LinearProbeResult:
    recipe = ClassifierRecipe(
        stage="linear-probe", frozen=True, epochs=settings.epochs,
        batch_size=settings.batch_size, lr=settings.lr, backbone_lr=0.0,
        weight_decay=settings.weight_decay, dropout=0.0, val_fraction=settings.val_fraction,
        windows=settings.windows, crops=settings.crops, seed=settings.seed,
        workers=settings.workers, config=output_relevant(settings),
        resumable=LINEAR_PROBE_RESUMABLE)
    outcome = train_classifier(recipe, frozen, split, compute, context, resume)
    result = LinearProbeResult(frozen.folder, "windows", outcome.top1, outcome.top5,
                               outcome.per_class, outcome.num_train, outcome.num_test,
                               frozen.description, best_epoch=outcome.best_epoch,
                               seconds=time.perf_counter() - started,
                               class_names=outcome.class_names,
                               random_init=frozen.random_init,
                               made=(f"windows protocol: a random clip a training video an "
                                     f"epoch; a test video's softmax averaged over "
                                     f"{settings.windows} windows x {settings.crops} crops"),
                               warnings=outcome.warnings)
    if compute.distribution.is_main:
        write_results(frozen.folder, result.summary(), outcome.confusion, outcome.class_names,
                      f"linear probe, top-1 {result.top1:.3f}", context)
    return result


def _cached_protocol(settings: LinearProbeConfig, frozen: EncoderSource, split: int,
                     compute: Compute, context: RunContext, started: float
                     ) -> LinearProbeResult:
    stored, reused = _clip_features(frozen, settings, split, compute, context)
    train = stored.split == "train"
    classes = len(stored.class_names)
    classifier = train_linear_classifier(stored.features[train], stored.labels[train], classes,
                                         settings)
    test_features = stored.features[~train].reshape(-1, settings.windows,
                                                    stored.features.shape[1])
    test_labels = stored.labels[~train][::settings.windows]
    with torch.no_grad():
        logits = classifier(torch.from_numpy(test_features))
        probabilities = torch.softmax(logits, dim=-1).mean(dim=1).numpy()
    matrix = confusion_matrix(probabilities.argmax(axis=1), test_labels, classes)
    names = list(stored.class_names)
    result = LinearProbeResult(frozen.folder, "cached",
                               top_k_accuracy(probabilities, test_labels, 1),
                               top_k_accuracy(probabilities, test_labels, min(5, classes)),
                               per_class_accuracy(matrix, names),
                               int(train.sum() // settings.train_clips), len(test_labels),
                               frozen.description, reused,
                               seconds=time.perf_counter() - started, class_names=names,
                               random_init=frozen.random_init,
                               made=(f"cached protocol: {settings.train_clips} evenly spaced "
                                     f"clips a training video; a test video's softmax "
                                     f"averaged over {settings.windows} windows"),
                               warnings=split_caveats([names[c] for c in stored.labels[train]],
                                                      [names[c] for c in test_labels], names))
    if compute.distribution.is_main:
        frozen.folder.mkdir(parents=True, exist_ok=True)
        torch.save({"weight": classifier.weight.detach(), "bias": classifier.bias.detach()},
                   RunFolder(frozen.folder).classifier)
        write_results(frozen.folder, result.summary(), matrix.tolist(), names,
                      f"linear probe (cached), top-1 {result.top1:.3f}", context)
        point_latest(frozen.folder, frozen.folder.name.rsplit("-", 1)[0])
    return result


def _clip_features(frozen: EncoderSource, settings: LinearProbeConfig, split: int,
                   compute: Compute, context: RunContext) -> tuple[StoredFeatures, bool]:
    """Per-clip backbone features of train and test videos, cached in features.h5 of a
    folder of their own (`linear-probe-features-<tag>`), shared by every classifier setting."""
    path = RunFolder(settings_folder(frozen.folder.parent, "linear-probe-features",
                                     {"train_clips": settings.train_clips,
                                      "windows": settings.windows})).features
    digest = content_digest_of(frozen.frames)
    source = {"encoder": frozen.identity, "frames_digest": digest, "split": split,
              "train_clips": settings.train_clips, "clips": settings.windows, **frozen.clip}
    key = fingerprint({"stage": "linear-probe-features", **source})
    if artifact_fingerprint(path) == key and not context.force:
        with open_artifact(path, KIND_FEATURES) as h5:
            return read_features(h5), True
    store = ClipStore(frozen.frames)
    train, test = split_rows(store, split)
    plan = ((train, settings.train_clips), (test, settings.windows))
    parts = []
    for rows, count in plan:
        clips = EvaluationClips(store, rows, frozen.clip["clip_length"], frozen.clip["stride"],
                                frozen.clip["crop_size"], count)
        parts.append(embed_clips(frozen.encoder, clips, feature="backbone", batch_size=32,
                                 workers=settings.workers, compute=compute,
                                 progress=context.progress, average=False))
    columns = store.table.columns
    ids = np.concatenate([np.repeat(columns["video_id"][rows], count) for rows, count in plan])
    labels = np.concatenate([np.repeat(columns["label"][rows], count) for rows, count in plan])
    split_names = np.array(["train"] * (len(train) * settings.train_clips)
                           + ["test"] * (len(test) * settings.windows), dtype=object)
    features = np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts])
    stored = StoredFeatures(features, ids, labels.astype(np.int64), split_names,
                            list(store.table.class_names), "backbone", source)
    if compute.distribution.is_main:
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
