"""finetune: end-to-end action classification from a pretrained (or random) backbone.

Defaults are the paper's code's: Adam with lr 1e-3 for the head and 1e-4 for the backbone,
weight decay 1e-3, dropout 0.9, lr x0.1 at epochs 60 and 100 of 150 (scaled to other
lengths); augmented training clips; test by averaging the softmax over `windows` x `crops`
views a video. best.pt is chosen on a validation share carved from the training videos, never
on the test split. Checkpoints are atomic and every random choice derives from (seed, epoch,
video or rank), so `--resume` after a kill ends with the same weights; under torchrun the
model is wrapped in DDP (`stages.training.classification` and the training spine).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.evaluation.random_init import RandomInit, baseline_summary
from stages.evaluation.sources import encoder_source, evaluated_frames, require_labelled
from stages.finetune_config import FINETUNE_RESUMABLE, FinetuneConfig
from stages.pretrain_config import PretrainConfig
from stages.runtime.context import RunContext
from stages.runtime.sections import ComputeConfig, DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant
from stages.training.classification import ClassifierRecipe, train_classifier, write_results
from stages.training.compute import computing

__all__ = ["FinetuneConfig", "FinetuneResult", "run"]

NEEDS_LABELS = ("finetune trains and tests a classifier of the videos' classes, so it needs "
                "labelled ones")


@dataclass
class FinetuneResult:
    """What `finetune.run` did: the results folder, test top-1/top-5 of best.pt, the epoch it came
    from, accuracy per class, the class names (frames.h5's, in label order) and the random-init
    baseline when the encoder was one."""

    folder: Path
    encoder: str  # the checkpoint fine-tuned (a random-init baseline's best.pt included)
    status: str
    top1: float
    top5: float
    best_epoch: int
    per_class: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    class_names: list[str] = field(default_factory=list)
    random_init: RandomInit | None = None
    made: str = ""  # how: the views of a test video
    warnings: list[str] = field(default_factory=list)  # about the split (`split_caveats`)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints and results.json holds: `folder`, `encoder`,
        `random_init` (what the baseline encoder is; None for a trained one),
        `random_init_seed`, `status`, `top1`, `top5` (shares, 0..1), `best_epoch`,
        `made` (how: the clips of a test video), `warnings` (about the split), `per_class`,
        `class_names` (the confusion matrix's rows and columns, in order) and `seconds`."""
        return {"stage": "finetune", "folder": str(self.folder), "encoder": self.encoder,
                **baseline_summary(self.random_init), "status": self.status,
                "top1": round(self.top1, 6), "top5": round(self.top5, 6),
                "best_epoch": self.best_epoch, "made": self.made, "warnings": self.warnings,
                "per_class": self.per_class,
                "class_names": self.class_names, "seconds": round(self.seconds, 3)}


def recipe(settings: FinetuneConfig) -> ClassifierRecipe:
    """The `ClassifierRecipe` of `settings`: the whole model trains, the backbone at its own lr."""
    return ClassifierRecipe(
        stage="finetune", frozen=False, epochs=settings.epochs, batch_size=settings.batch_size,
        lr=settings.lr, backbone_lr=settings.backbone_lr, weight_decay=settings.weight_decay,
        dropout=settings.dropout, val_fraction=settings.val_fraction, windows=settings.windows,
        crops=settings.crops, seed=settings.seed, workers=settings.workers,
        config=output_relevant(settings), resumable=FINETUNE_RESUMABLE)


def run(settings: FinetuneConfig, data: DataConfig, workspace: WorkspaceConfig, *,
        pretrain: PretrainConfig | None = None, context: RunContext | None = None,
        run_dir: Path | None = None, checkpoint: Path | None = None,
        random_init: bool = False, cross: str | None = None, resume: bool = False,
        compute_settings: ComputeConfig | None = None, random_init_seed: int | None = None
        ) -> FinetuneResult:
    """Fine-tune, choose best.pt on the validation share, then test it. With `random_init`,
    from an untrained encoder drawn under `random_init_seed`, else the compared run's seed."""
    context = (context or RunContext()).running(
        finetune=settings, pretrain=pretrain, data=data, workspace=workspace,
        compute=compute_settings or ComputeConfig())
    clock = time.perf_counter()
    with computing(compute_settings or ComputeConfig()) as compute:
        require_labelled(evaluated_frames(workspace, data, run_dir=run_dir,
                                          checkpoint=checkpoint, random_init=random_init,
                                          cross=cross), NEEDS_LABELS)
        source = encoder_source(output_relevant(pretrain or PretrainConfig()), data, workspace,
                                run_dir=run_dir, checkpoint=checkpoint,
                                random_init=random_init, random_init_seed=random_init_seed,
                                stage="finetune", cross=cross)
        outcome = train_classifier(recipe(settings), source, data.split, compute, context,
                                   resume)
        result = FinetuneResult(source.folder, source.description, outcome.status,
                                outcome.top1, outcome.top5, outcome.best_epoch,
                                outcome.per_class, time.perf_counter() - clock,
                                outcome.class_names, source.random_init,
                                warnings=outcome.warnings)
        result.made = (f"best.pt by validation top-1; a test video's softmax averaged over "
                       f"{settings.windows} windows x {settings.crops} crops")
        if compute.distribution.is_main:
            write_results(source.folder, result.summary(), outcome.confusion,
                          outcome.class_names,
                          f"fine-tuned, top-1 {result.top1:.3f}", context)
        return result
