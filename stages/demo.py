"""demo: the whole pipeline on the built-in synthetic data, SLIC against a random network.

make-dataset -> extract-frames -> compute-flow -> pretrain (r3d_tiny, a CPU budget) ->
retrieve -> cluster -> linear-probe, the evaluations repeated for a randomly initialised
encoder of the same architecture and seed. Every artifact stays in the workspace.

Fine-tuning is not in the demo: end-to-end training of r3d_tiny from 128 videos in a CPU
budget stays at chance for SLIC and random init alike (loss at ln 8 after 4 epochs), so its
row said nothing for the time its two runs took. `slic finetune` runs in the tests and in
benchmarks/gpu_check.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stages import cluster, compute_flow, extract_frames, linear_probe, make_dataset
from stages import pretrain as pretrain_stage
from stages import retrieve as retrieve_stage
from stages.cluster_config import ClusterConfig
from stages.config import SlicConfig
from stages.evaluation.sources import random_init_checkpoint
from stages.io.run_folder import RunFolder
from stages.report import write_report
from stages.runtime.context import RunContext
from stages.runtime.sections import DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant


@dataclass(frozen=True)
class DemoBudget:
    """Sizes of one demo: the data, the clips and how long each stage trains."""

    name: str  # in the run folders' names, so the two budgets never share a run
    num_classes: int
    groups_per_class: int
    clips_per_group: int
    test_groups: int
    min_seconds: float
    max_seconds: float
    short_side: int
    clip_length: int
    stride: int
    crop_size: int
    batch_size: int
    pretrain_epochs: int
    cluster_warmup_epochs: int  # instance-only epochs before the first FINCH round
    probe_epochs: int
    clips: int


FULL = DemoBudget(name="full", num_classes=8, groups_per_class=6, clips_per_group=4, test_groups=2,
                  min_seconds=2.0, max_seconds=4.0, short_side=128, clip_length=8, stride=3,
                  crop_size=64, batch_size=16, pretrain_epochs=25,
                  cluster_warmup_epochs=10,
                  probe_epochs=100, clips=5)
QUICK = DemoBudget(name="quick", num_classes=4, groups_per_class=3, clips_per_group=2,
                   test_groups=1, min_seconds=0.8, max_seconds=1.2, short_side=64,
                   clip_length=4, stride=2, crop_size=32, batch_size=8, pretrain_epochs=2,
                   cluster_warmup_epochs=1,
                   probe_epochs=20, clips=2)


@dataclass
class DemoResult:
    """What the demo did: its workspace, the SLIC-against-random-init rows, the wall time of each
    step and the two reports."""

    workspace: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step
    seconds: float = 0.0
    reports: list[Path] = field(default_factory=list)  # report.html of SLIC and the baseline
    budget: str = FULL.name  # "quick": a smoke test of the pipeline, its numbers mean nothing
    retrieve_clips: int = FULL.clips  # clips a video of its R@k (slic retrieve --clips)
    warnings: list[str] = field(default_factory=list)  # about the split (`split_caveats`)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary the CLI prints: `results` (one row per metric, `slic` against
        `random_init`, and `how` each is made), `retrieve_clips` (what `slic retrieve --clips`
        repeats its R@k with), `warnings` (about the split), `reports`, `stage_seconds` per
        step and the total `seconds`."""
        return {"stage": "demo", "workspace": str(self.workspace), "results": self.rows,
                "retrieve_clips": self.retrieve_clips, "warnings": self.warnings,
                "reports": [str(path) for path in self.reports],
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "seconds": round(self.seconds, 3), "budget": self.budget}


class StageClock:
    """Wall seconds of each named step, summed when a name repeats (both evaluations)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, name: str, step: Callable[[], Any]) -> Any:
        """Run `step()`, add its wall time to `name`, and return what it returned."""
        start = time.perf_counter()
        try:
            return step()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _configure(config: SlicConfig, budget: DemoBudget, workspace: Path) -> SlicConfig:
    data = DataConfig(dataset="synthetic", root=str(workspace / "demo-data"))
    return replace(
        config, workspace=WorkspaceConfig(root=str(workspace)), data=data,
        make_dataset=replace(config.make_dataset, num_classes=budget.num_classes,
                             groups_per_class=budget.groups_per_class,
                             clips_per_group=budget.clips_per_group,
                             min_seconds=budget.min_seconds, max_seconds=budget.max_seconds,
                             test_groups=budget.test_groups),
        extract_frames=replace(config.extract_frames, short_side=budget.short_side),
        pretrain=replace(config.pretrain, arch="r3d_tiny", clip_length=budget.clip_length,
                         stride=budget.stride, crop_size=budget.crop_size,
                         batch_size=budget.batch_size,
                         epochs=budget.pretrain_epochs,
                         eval_every=max(1, budget.pretrain_epochs // 5),  # 5 recall points
                         cluster_warmup_epochs=budget.cluster_warmup_epochs,
                         run_name=f"demo-slic-{budget.name}", workers=2),
        retrieve=replace(config.retrieve, clips=budget.clips, ks="1,5"),
        linear_probe=replace(config.linear_probe, protocol="cached",
                             epochs=budget.probe_epochs, batch_size=256,
                             train_clips=budget.clips, windows=budget.clips),
    )


def _evaluate(config: SlicConfig, checkpoint: Path, context: RunContext, clock: StageClock,
              who: str) -> dict[str, Any]:
    """R@1, R@5, NMI of FINCH's finest partition and the linear probe's top-1."""
    recall = clock.timed(f"retrieve ({who})", lambda: retrieve_stage.run(
        config.retrieve, config.data, config.workspace, context=context, checkpoint=checkpoint,
        compute_settings=config.compute))
    clustered = clock.timed(f"cluster ({who})", lambda: cluster.run(
        ClusterConfig(split="train"), recall.features,
        out=RunFolder(recall.features.parent).assignments, context=context))
    probe = clock.timed(f"linear-probe ({who})", lambda: linear_probe.run(
        config.linear_probe, config.data, config.workspace, pretrain=config.pretrain,
        context=context, checkpoint=checkpoint, compute_settings=config.compute))
    return {"r1": recall.recall[1], "r5": recall.recall[5],
            "nmi": clustered.quality[0]["nmi"] if clustered.quality else None,
            "linear_probe_top1": probe.top1, "warnings": recall.warnings + probe.warnings}


def how_made(config: SlicConfig) -> dict[str, str]:
    """How each of the demo's figures is made (key -> one line), so that a figure of another
    command can be told apart from it or made the same way."""
    clips, feature = config.retrieve.clips, config.retrieve.feature
    return {"r1": f"test against train videos, {clips} clips a video, {feature}",
            "r5": f"test against train videos, {clips} clips a video, {feature}",
            "nmi": f"FINCH's finest partition of the train videos ({clips} clips a video)",
            "linear_probe_top1": (f"cached: {config.linear_probe.train_clips} clips a training "
                                  f"video, {config.linear_probe.windows} a test video")}


def run(config: SlicConfig, workspace: Path, *, quick: bool = False,
        context: RunContext | None = None) -> DemoResult:
    """Run every stage on the demo data under `workspace`; returns the comparison table."""
    context = context or RunContext()
    clock = time.perf_counter()
    budget = QUICK if quick else FULL
    config = _configure(config, budget, Path(workspace))
    # Provenance: the demo's budget, not the defaults the command line resolved.
    context = replace(context, config=config.as_dict())
    data, space = config.data, config.workspace
    stages = StageClock()
    stages.timed("make-dataset", lambda: make_dataset.run(config.make_dataset, Path(data.root),
                                                          context=context,
                                                          option="--workspace"))
    stages.timed("extract-frames", lambda: extract_frames.run(config.extract_frames, data, space,
                                                              context=context))
    stages.timed("compute-flow", lambda: compute_flow.run(config.compute_flow, data, space,
                                                          context=context))
    # A second demo finds every stage up to date: training resumes a finished run (and
    # refuses one trained with other settings), evaluations reuse their cached features.
    trained = stages.timed("pretrain", lambda: pretrain_stage.run(
        config.pretrain, data, space, context=context, resume=not context.force,
        compute_settings=config.compute))
    best = RunFolder(trained.run_folder).best
    slic = _evaluate(config, best, context, stages, "SLIC")
    # The baseline: the SLIC run's encoder and clip settings, untrained (same seed).
    random_checkpoint = random_init_checkpoint(output_relevant(config.pretrain), space, data,
                                               like=best,
                                               name=f"demo-random-{budget.name}")
    baseline = _evaluate(config, random_checkpoint, context, stages, "random")
    reports = [stages.timed("report", lambda folder=folder: write_report(folder).path)
               for folder in (trained.run_folder, random_checkpoint.parent)]
    made = how_made(config)
    rows = [{"metric": name, "slic": slic[key], "random_init": baseline[key], "how": made[key]}
            for name, key in (("R@1", "r1"), ("R@5", "r5"), ("NMI (FINCH finest)", "nmi"),
                              ("linear probe top-1 (cached)", "linear_probe_top1"))]
    return DemoResult(Path(workspace), rows, stages.seconds, time.perf_counter() - clock,
                      reports, budget.name, retrieve_clips=config.retrieve.clips,
                      warnings=sorted(set(slic["warnings"])))
