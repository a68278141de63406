"""Why do SLIC's embeddings collapse, and why does its triplet objective learn slowly from a
random start? (issue 14, item 2: measure before changing anything)

Trains r3d_tiny with SLIC's own training step (`stages.pretrain`'s task, `Trainer.train_epoch`,
`slic_step`, the project's mining and losses) on the motion-only synthetic data
(`make_dataset.class_shape_probability: 0`, the budget of benchmarks/RESULTS.md section 12:
8x64x64 clips at stride 3, batch 16, the paper's SGD) and records, through hooks only:

- per layer (each conv, BatchNorm and linear module): gradient L2 norm, weight norm, their ratio;
  the gradient reaching the embeddings (per clip); per stage, how much successive steps'
  gradients agree (|sum| / sum of norms over windows of steps);
- the mined triplets, re-mined from the step's own embeddings with the step's own generator
  (the counts are checked against the step's): active share (loss > 0), hard / semi-hard
  shares, the fallback rate (no negative within d(a, p) + m1: the hardest one is taken), the
  share of candidate negatives within the margin;
- d(a, p) and d(a, n) (mean and quantiles) against m1, and the temporal loss's d(x, aug x)
  and d(x, x+) against m2;
- BatchNorm: batch statistics against the running ones (before the step's update) of a few
  layers, and eval-mode against train-mode features of the step's clips;
- every few epochs, on the centre clips of all training videos (eval mode): mean pairwise
  cosine, effective rank, the mean direction's share of the squared norm and the cosine after
  centring, of the projection and of the backbone features, with test-to-train R@1.

One core, no loader workers. The workspace (data, frames, flow) is made once and reused:

    PYTHONPATH=. python benchmarks/bench_triplet_diagnostics.py --workspace /tmp/tripdiag \
        --epochs 20 --variants slic supervised supervised-margin0.05 supervised-lr0.01 \
        --json /tmp/tripdiag/triplet-diagnostics.json

Variants: `slic` (the defaults, instance-only warm-up for 5 epochs then FINCH every 5, as in
section 12), `supervised` (true classes as clusters), and contrasts that are *not* the
defaults, each one setting changed against `supervised`: `supervised-lr0.01` and
`supervised-margin0.05`. About 3.5 s a step on one core of a 2-core AMD EPYC (20 epochs, 160
steps: about 11 minutes a variant).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO_ROOT, machine_info, print_machine, table  # noqa: E402
from stages.clips.fixed_windows import EvaluationClips  # noqa: E402
from stages.evaluation.collapse import embedding_health, mean_pairwise_cosine  # noqa: E402
from stages.evaluation.retrieval import retrieval_recall  # noqa: E402
from stages.pretrain import build_training
from stages.pretrain_config import PretrainConfig  # noqa: E402
from stages.runtime.context import RunContext  # noqa: E402
from stages.runtime.progress import SilentProgress  # noqa: E402
from stages.runtime.sections import DataConfig, WorkspaceConfig  # noqa: E402
from stages.slic_training import SlicTraining  # noqa: E402
from stages.training.compute import Compute  # noqa: E402
from stages.training.embedding import embed_clips  # noqa: E402
from stages.training.losses import cosine_distances, mine_triplets  # noqa: E402
from stages.training.slic_step import step_generator  # noqa: E402
from stages.training.trainer import StepResult, Trainer  # noqa: E402

CPU = Compute(torch.device("cpu"), "off", torch.contiguous_format)
# Section 12's budget (benchmarks/bench_pretrain_learning.py BASE, --warmup 5), no workers.
BASE: dict[str, Any] = {
    "arch": "r3d_tiny", "clip_length": 8, "stride": 3, "crop_size": 64, "batch_size": 16,
    "cluster_every": 5, "cluster_warmup_epochs": 5, "workers": 0, "eval_every": 0}
VARIANTS: dict[str, dict[str, Any]] = {
    "slic": {},
    "supervised": {"pseudo_labels": "labels"},
    # Contrasts, not the defaults: one setting changed against `supervised`.
    "supervised-lr0.01": {"pseudo_labels": "labels", "lr": 0.01},
    "supervised-margin0.05": {"pseudo_labels": "labels", "margin": 0.05},
}
# BatchNorm layers whose statistics are followed: stem, one per stage, the head's.
BN_LAYERS = ("backbone.stem.1", "backbone.layers.0.0.conv1.1", "backbone.layers.1.0.conv1.1",
             "backbone.layers.2.0.conv1.1", "backbone.layers.3.0.conv2.1", "head.layers.1")
QUANTILES = (0.1, 0.5, 0.9)


def cli_command() -> list[str]:
    """This checkout's CLI (never an installed `slic`, which may be another checkout)."""
    return [sys.executable, "-c", "from slic_cli.app import main; main()"]


def prepare(workspace: Path, shape_probability: float) -> None:
    """Synthetic videos, frames.h5 and flow.h5 under `workspace`, unless already there."""
    folder = workspace / "ws" / "synthetic"
    if (folder / "frames.h5").is_file() and (folder / "flow.h5").is_file():
        return
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    data = workspace / "demo-data"
    common = ["--dataset", "synthetic", "--workspace", str(workspace / "ws"), "-q"]
    for args in (["make-dataset", "synthetic", "--out", str(data), "-q",
                  f"--set=make_dataset.class_shape_probability={shape_probability}"],
                 ["extract-frames", "--root", str(data), *common,
                  "--set=extract_frames.workers=1"],
                 ["compute-flow", *common, "--set=compute_flow.workers=1"]):
        subprocess.run(cli_command() + args, check=True, env=env)


def quantiles(values: torch.Tensor) -> list[float]:
    """Mean and QUANTILES of a 1-D tensor."""
    values = values.float()
    return [float(values.mean())] + [float(q) for q in
                                     torch.quantile(values, torch.tensor(QUANTILES))]


def parameter_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every module holding parameters of its own (conv, BatchNorm, linear), by name."""
    return {name: module for name, module in model.named_modules()
            if any(True for _ in module.parameters(recurse=False))}


def norm_of(tensors: list[torch.Tensor]) -> float:
    """L2 norm of several tensors taken together."""
    return float(torch.sqrt(sum((t.detach().float() ** 2).sum() for t in tensors)))


def batch_statistics(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance of a BatchNorm input (B, C, ...)."""
    dims = [0, *range(2, inputs.dim())]
    return inputs.mean(dim=dims), inputs.var(dim=dims, unbiased=False)


def centred_cosine(features: np.ndarray) -> tuple[float, float]:
    """The mean direction's share of the mean squared norm, and the mean pairwise cosine of
    the rows after subtracting their mean: how much of the "collapse" is one common offset."""
    rows = np.asarray(features, dtype=np.float64)
    mean = rows.mean(axis=0)
    share = float(mean @ mean / (rows ** 2).sum(axis=1).mean())
    centred = rows - mean
    unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    return share, mean_pairwise_cosine(unit)


def stage_of(parameter: str) -> str:
    """The stage a parameter belongs to: stem, layer1 .. layer4 or head."""
    if parameter.startswith("backbone.layers."):
        return f"layer{int(parameter.split('.')[2]) + 1}"
    return parameter.split(".")[1] if parameter.startswith("backbone.") else "head"


def short_name(module: str) -> str:
    """backbone.layers.0.0.conv1.0 -> layer1.0.conv1.0, backbone.stem.0 -> stem.0."""
    parts = module.split(".")
    if module.startswith("backbone.layers."):
        return ".".join([f"layer{int(parts[2]) + 1}", *parts[3:]])
    return ".".join(parts[1:]) if parts[0] == "backbone" else module


class GradientCoherence:
    """Per stage, |sum of the gradients| / sum of their norms over windows of steps: 1 when
    every step pushes the same way, about 1 / sqrt(window) for independent noise."""

    def __init__(self, model: nn.Module, window: int) -> None:
        self.window = window
        self.groups: dict[str, list[nn.Parameter]] = {}
        for name, parameter in model.named_parameters():
            self.groups.setdefault(stage_of(name), []).append(parameter)
        self.records: list[dict[str, float]] = []
        self.reset()

    def reset(self) -> None:
        self.sums = {g: [torch.zeros_like(p) for p in ps] for g, ps in self.groups.items()}
        self.norms = dict.fromkeys(self.groups, 0.0)
        self.count = 0

    def add(self, step: int) -> None:
        """Add the current gradients; close the window after `window` steps."""
        for group, parameters in self.groups.items():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
            for total, grad in zip(self.sums[group], grads):
                total += grad.detach()
            self.norms[group] += norm_of(grads)
        self.count += 1
        if self.count == self.window:
            self.records.append({"last_step": step, **{
                group: norm_of(self.sums[group]) / max(self.norms[group], 1e-12)
                for group in self.groups}})
            self.reset()


@dataclass
class Capture:
    """What the hooks saw in the step being recorded."""

    clips: torch.Tensor | None = None
    projection: torch.Tensor | None = None
    backbone: torch.Tensor | None = None
    projection_grad: torch.Tensor | None = None
    bn: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


class Diagnostics:
    """Hooks on the encoder and the optimiser that record one row per training step."""

    def __init__(self, task: SlicTraining, trainer: Trainer, probe_every: int,
                 coherence_window: int) -> None:
        self.task, self.trainer, self.probe_every = task, trainer, probe_every
        self.encoder = task.encoder
        self.modules = parameter_modules(self.encoder)
        self.coherence = GradientCoherence(self.encoder, coherence_window)
        self.capture = Capture()
        self.active = False
        self.global_step = 0
        self.pending: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []
        self.step_of_task = task.step
        task.step = self.step  # type: ignore[method-assign]
        self.encoder.register_forward_hook(self.on_encoder)
        self.encoder.backbone.register_forward_hook(self.on_backbone)
        named = dict(self.encoder.named_modules())
        for name in BN_LAYERS:
            named[name].register_forward_pre_hook(self.bn_hook(name))
        trainer.optimizer.register_step_pre_hook(self.before_update)

    # -- hooks ------------------------------------------------------------------------------
    def on_encoder(self, module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor
                   ) -> None:
        """Keep the step's clips and projections, and the gradient that reaches them."""
        if not self.active:
            return
        self.capture.clips = inputs[0].detach()
        self.capture.projection = output.detach()
        output.register_hook(self.on_projection_grad)

    def on_projection_grad(self, grad: torch.Tensor) -> None:
        self.capture.projection_grad = grad.detach()

    def on_backbone(self, module: nn.Module, inputs: tuple[torch.Tensor],
                    output: torch.Tensor) -> None:
        if self.active:
            self.capture.backbone = output.detach()

    def bn_hook(self, name: str):
        """A pre-hook keeping the running statistics before the step's update, and the batch's."""
        def hook(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
            if not self.active:
                return
            mean, var = batch_statistics(inputs[0].detach().float())
            self.capture.bn[name] = {"batch_mean": mean, "batch_var": var,
                                     "running_mean": module.running_mean.clone(),
                                     "running_var": module.running_var.clone()}
        return hook

    def step(self, model: nn.Module, batch: dict[str, torch.Tensor], epoch: int, step: int
             ) -> StepResult:
        """SLIC's step, with the hooks listening; its own triplets re-mined for the record."""
        self.capture = Capture()
        self.active = True
        try:
            result = self.step_of_task(model, batch, epoch, step)
        finally:
            self.active = False
        self.pending = {"epoch": epoch, "step": self.global_step,
                        **self.triplet_record(batch, epoch, step, result)}
        return result

    def before_update(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """After backward, before SGD moves the weights: gradients, BN and eval-mode probes."""
        row = self.pending
        row.update(self.gradient_record())
        self.coherence.add(self.global_step)
        if self.global_step % self.probe_every == 0:
            row.update(self.bn_record())
            row.update(self.eval_mode_record())
        row["lr"] = optimizer.param_groups[0]["lr"]
        self.rows.append(row)
        self.global_step += 1

    # -- what is recorded -------------------------------------------------------------------
    def triplet_record(self, batch: dict[str, torch.Tensor], epoch: int, step: int,
                       result: StepResult) -> dict[str, Any]:
        """Mining and distances of the step, from its own embeddings and generator."""
        settings = self.task.loss_settings
        size = len(batch["index"])
        anchors, positives, augmented = self.capture.projection.float().split(size)
        mined = torch.cat([anchors, positives])
        clusters = torch.cat([batch["cluster"], batch["cluster"]])
        distances = cosine_distances(mined)
        triplets = mine_triplets(distances, clusters, settings.margin,
                                 step_generator(self.task.settings.seed, epoch, step, 0),
                                 settings.official_fallback)
        if (len(triplets.anchors) != result.stats["triplets"]
                or int(triplets.fallback.sum()) != result.stats["fallbacks"]):
            raise RuntimeError("re-mined triplets differ from the step's own")
        d_ap = distances[triplets.anchors, triplets.positives]
        d_an = distances[triplets.anchors, triplets.negatives]
        terms = d_ap - d_an + settings.margin
        same = clusters[:, None] == clusters[None, :]
        candidates = ~same[triplets.anchors]
        within = candidates & (distances[triplets.anchors] < d_ap[:, None] + settings.margin)
        off_diagonal = ~torch.eye(len(mined), dtype=torch.bool)
        x_aug = 1 - torch.cosine_similarity(anchors, augmented, dim=1)
        x_pos = 1 - torch.cosine_similarity(anchors, positives, dim=1)
        temporal_terms = x_aug - x_pos + settings.temporal_margin
        flow = batch["positive_flow"].bool()
        share, centred = centred_cosine(self.capture.projection.numpy())
        return {
            "loss": float(result.loss.detach()), "triplet_loss": result.stats["triplet_loss"],
            "temporal_loss": result.stats["temporal_loss"], "triplets": len(triplets.anchors),
            "fallback": float(triplets.fallback.float().mean()),
            "active": float((terms > 0).float().mean()),
            "hard": float((d_an < d_ap).float().mean()),
            "within_share": float((within.sum(1) / candidates.sum(1).clamp(min=1)).mean()),
            "d_ap": quantiles(d_ap), "d_an": quantiles(d_an),
            "d_all": quantiles(distances[off_diagonal]),
            "gap": quantiles(d_an - d_ap),
            "temporal_active": float((temporal_terms > 0).float().mean()),
            "d_x_aug": quantiles(x_aug), "d_x_pos": quantiles(x_pos),
            "d_x_pos_flow": float(x_pos[flow].mean()) if flow.any() else None,
            "d_x_pos_rgb": float(x_pos[~flow].mean()) if (~flow).any() else None,
            "projection_norm": float(self.capture.projection.norm(dim=1).mean()),
            "backbone_norm": float(self.capture.backbone.norm(dim=1).mean()),
            "batch_projection_cosine": embedding_health(
                self.capture.projection.numpy())["mean_cosine"],
            "batch_mean_share": share, "batch_centred_cosine": centred,
            "false_positive": (result.stats["false_positives"] / result.stats["labelled"]
                               if result.stats["labelled"] else None),
        }

    def gradient_record(self) -> dict[str, Any]:
        """Per module: gradient norm, weight norm and their ratio; and the gradient that
        reached the projections (per clip, and its part along the projection: cosine losses
        give none)."""
        grads, weights = {}, {}
        for name, module in self.modules.items():
            params = list(module.parameters(recurse=False))
            grads[name] = norm_of([p.grad for p in params if p.grad is not None])
            weights[name] = norm_of(params)
        grad, projection = self.capture.projection_grad, self.capture.projection
        radial = (grad * projection).sum(1) / projection.norm(dim=1)
        return {"grad": grads, "weight": weights,
                "embedding_grad": float(grad.norm(dim=1).mean()),
                "embedding_grad_radial": float(radial.abs().mean())}

    def bn_record(self) -> dict[str, Any]:
        """Batch against running statistics of the followed BatchNorm layers: mean shift in
        running standard deviations, and the variance ratio (means over channels)."""
        record = {}
        for name, stats in self.capture.bn.items():
            scale = stats["running_var"].clamp(min=1e-5).sqrt()
            shift = ((stats["batch_mean"] - stats["running_mean"]).abs() / scale).mean()
            ratio = (stats["batch_var"] / stats["running_var"].clamp(min=1e-5)).mean()
            record[name] = {"mean_shift": float(shift), "var_ratio": float(ratio)}
        return {"bn": record}

    @torch.no_grad()
    def eval_mode_record(self) -> dict[str, Any]:
        """The step's clips through the same weights in eval mode (running statistics), against
        the train-mode features of the step: norm ratio and per-clip cosine."""
        self.encoder.eval()
        try:
            backbone = self.encoder.backbone(self.capture.clips)
            projection = self.encoder.head(backbone)
        finally:
            self.encoder.train()
        record = {}
        for key, evaluated in (("backbone", backbone), ("projection", projection)):
            trained = getattr(self.capture, key)
            record[f"eval_train_norm_{key}"] = float(
                (evaluated.norm(dim=1) / trained.norm(dim=1).clamp(min=1e-12)).mean())
            record[f"eval_train_cosine_{key}"] = float(
                torch.cosine_similarity(evaluated, trained, dim=1).mean())
        return record


def embed_videos(task: SlicTraining, videos: np.ndarray, feature: str) -> np.ndarray:
    """(N, D) eval-mode features ("projection" or "backbone") of the videos' centre clips."""
    s = task.settings
    clips = EvaluationClips(task.store, videos, s.clip_length, s.stride, s.crop_size)
    return embed_clips(task.encoder, clips, feature=feature, batch_size=32, workers=0,
                       compute=CPU, progress=SilentProgress())


def health_record(task: SlicTraining, epoch: int) -> dict[str, Any]:
    """Collapse measures of the train centre clips (eval mode), projection and backbone, and
    test-to-train R@1 with each."""
    v = task.videos
    record: dict[str, Any] = {"epoch": epoch}
    for feature in ("projection", "backbone"):
        gallery = embed_videos(task, v.train, feature)
        health = embedding_health(gallery, task.settings.seed)
        share, centred = centred_cosine(gallery)
        recall = retrieval_recall(embed_videos(task, v.test, feature), v.test_labels, gallery,
                                  v.train_labels, (1,))
        record[feature] = {**health, "mean_share": share, "centred_cosine": centred,
                           "r1": recall[1], "norm": float(np.linalg.norm(gallery, axis=1).mean())}
    return record


def run_variant(workspace: Path, variant: str, seed: int, epochs: int, probe_every: int,
                health_every: int, coherence_window: int) -> dict[str, Any]:
    """Train one variant with the diagnostics attached; returns its step rows and health."""
    settings = PretrainConfig(**{**BASE, **VARIANTS[variant], "seed": seed, "epochs": epochs,
                                 "run_name": f"diagnostics-{variant}-seed{seed}"})
    data = DataConfig(dataset="synthetic")
    context = RunContext(force=True).running(pretrain=settings)
    task, trainer = build_training(settings, data, WorkspaceConfig(root=str(workspace / "ws")),
                                   context=context, compute=CPU, frames=None, flow=None)
    task.folder.path.mkdir(parents=True, exist_ok=True)
    diagnostics = Diagnostics(task, trainer, probe_every, coherence_window)
    health = [health_record(task, 0)]
    rounds = []
    clock = time.perf_counter()
    for epoch in range(epochs):
        found = task.before_epoch(epoch)
        if found:
            rounds.append({"epoch": epoch, **{k: found.get(k) for k in
                                              ("num_clusters", "nmi", "cluster_fp_rate")}})
        trainer.train_epoch(task, epoch, epochs, SilentProgress())
        if (epoch + 1) % health_every == 0 or epoch == epochs - 1:
            health.append(health_record(task, epoch + 1))
        print(f"{variant} epoch {epoch + 1}/{epochs}: {time.perf_counter() - clock:.0f} s, "
              f"triplet loss {diagnostics.rows[-1]['triplet_loss']:.3f}", flush=True)
    return {"variant": variant, "seed": seed, "settings": {**BASE, **VARIANTS[variant]},
            "steps_per_epoch": len(diagnostics.rows) // epochs, "rows": diagnostics.rows,
            "health": health, "rounds": rounds, "coherence": diagnostics.coherence.records,
            "coherence_window": coherence_window, "seconds": time.perf_counter() - clock}


# -- the tables -------------------------------------------------------------------------------
def windows(rows: list[dict[str, Any]], count: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """The rows cut into `count` equal step windows, named by their step range."""
    edges = np.linspace(0, len(rows), count + 1).astype(int)
    return [(f"{a}-{b - 1}", rows[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def mean_of(rows: list[dict[str, Any]], key: str, index: int | None = None) -> float:
    """Mean of a row field (or of one position of a list field) over the rows that have it."""
    values = [r[key] if index is None else r[key][index] for r in rows
              if r.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


def triplet_table(result: dict[str, Any], count: int) -> str:
    """Mining, distances and margins per step window."""
    margin = VARIANTS[result["variant"]].get("margin", 0.2)
    rows = []
    for name, part in windows(result["rows"], count):
        rows.append([
            name, f"{mean_of(part, 'triplet_loss'):.3f}", f"{mean_of(part, 'triplets'):.0f}",
            f"{mean_of(part, 'active'):.2f}", f"{mean_of(part, 'hard'):.2f}",
            f"{mean_of(part, 'fallback'):.3f}", f"{mean_of(part, 'within_share'):.2f}",
            " / ".join(f"{mean_of(part, 'd_ap', i):.3f}" for i in (0, 1, 3)),
            " / ".join(f"{mean_of(part, 'd_an', i):.3f}" for i in (0, 1, 3)),
            f"{mean_of(part, 'gap', 0):+.3f}",
            f"{mean_of(part, 'd_all', 0):.3f} ({mean_of(part, 'd_all', 1):.3f}-"
            f"{mean_of(part, 'd_all', 3):.3f})"])
    return table(["steps", "triplet loss", "triplets", "active", "hard (d_an<d_ap)",
                  "fallback", "negatives within d_ap+m1", "d(a,p) mean / q10 / q90",
                  "d(a,n) mean / q10 / q90", f"d_an-d_ap (m1 {margin})",
                  "all pairs mean (q10-q90)"], rows)


def temporal_table(result: dict[str, Any], count: int) -> str:
    """The temporal loss's distances against m2, the embedding norm and its gradient."""
    rows = []
    for name, part in windows(result["rows"], count):
        rows.append([
            name, f"{mean_of(part, 'temporal_loss'):.3f}",
            f"{mean_of(part, 'temporal_active'):.2f}",
            f"{mean_of(part, 'd_x_aug', 0):.3f}", f"{mean_of(part, 'd_x_pos', 0):.3f}",
            f"{mean_of(part, 'd_x_pos_rgb'):.3f} / {mean_of(part, 'd_x_pos_flow'):.3f}",
            f"{mean_of(part, 'batch_projection_cosine'):.3f} / "
            f"{mean_of(part, 'batch_centred_cosine'):.3f} / "
            f"{mean_of(part, 'batch_mean_share'):.2f}",
            f"{mean_of(part, 'projection_norm'):.2f}", f"{mean_of(part, 'embedding_grad'):.2e}",
            f"{mean_of(part, 'embedding_grad_radial'):.1e}",
            f"{mean_of(part, 'false_positive'):.2f}"])
    return table(["steps", "temporal loss", "temporal active", "d(x,aug x)", "d(x,x+)",
                  "d(x,x+) RGB / flow x+",
                  "batch cosine / centred / mean share", "‖projection‖",
                  "‖dL/d projection‖ per clip", "radial part", "positive FP rate"], rows)


def gradient_table(result: dict[str, Any], count: int) -> str:
    """Per module: gradient norm and gradient / weight norm, per step window."""
    parts = windows(result["rows"], count)
    names = list(result["rows"][0]["grad"])
    rows = []
    for name in names:
        cells = [short_name(name)]
        for _, part in parts:
            grad = np.mean([r["grad"][name] for r in part])
            ratio = np.mean([r["grad"][name] / max(r["weight"][name], 1e-12) for r in part])
            cells.append(f"{grad:.2e} ({ratio:.1e})")
        cells.append(f"{result['rows'][0]['weight'][name]:.2f} -> "
                     f"{result['rows'][-1]['weight'][name]:.2f}")
        rows.append(cells)
    return table(["module", *(f"steps {n}: ‖g‖ (‖g‖/‖w‖)" for n, _ in parts), "‖w‖ first -> last"],
                 rows)


def bn_table(result: dict[str, Any], count: int) -> str:
    """BatchNorm batch against running statistics, and eval- against train-mode features."""
    probed = [r for r in result["rows"] if "bn" in r]
    parts = windows(probed, count)
    rows = []
    for layer in BN_LAYERS:
        cells = [short_name(layer)]
        for _, part in parts:
            shift = np.mean([r["bn"][layer]["mean_shift"] for r in part])
            ratio = np.mean([r["bn"][layer]["var_ratio"] for r in part])
            cells.append(f"{shift:.2f} / {ratio:.2f}")
        rows.append(cells)
    for key in ("backbone", "projection"):
        cells = [f"eval/train {key}: norm ratio / cosine"]
        for _, part in parts:
            cells.append(f"{mean_of(part, f'eval_train_norm_{key}'):.2f} / "
                         f"{mean_of(part, f'eval_train_cosine_{key}'):.3f}")
        rows.append(cells)
    steps = [f"probed steps {part[0]['step']}-{part[-1]['step']}" for _, part in parts]
    return table(["layer: mean shift (running sd) / var ratio (batch/running)", *steps], rows)


def coherence_table(result: dict[str, Any]) -> str:
    """Gradient coherence per stage and window of steps, with the floor of pure noise."""
    records = result.get("coherence", [])
    if not records:
        return "(no gradient coherence recorded)"
    window = result["coherence_window"]
    stages = [key for key in records[0] if key != "last_step"]
    rows = [[f"{r['last_step'] - window + 1}-{r['last_step']}",
             *(f"{r[stage]:.3f}" for stage in stages)] for r in records]
    return table([f"steps (noise floor 1/sqrt({window}) = {window ** -0.5:.3f})", *stages],
                 rows)


def health_table(result: dict[str, Any]) -> str:
    """Collapse measures of the training videos' centre clips and R@1, per evaluated epoch."""
    rows = []
    for record in result["health"]:
        cells = [str(record["epoch"])]
        for key in ("projection", "backbone"):
            h = record[key]
            cells += [f"{h['mean_cosine']:.3f}", f"{h['centred_cosine']:.3f}",
                      f"{h['mean_share']:.2f}", f"{h['effective_rank']:.1f}", f"{h['r1']:.3f}"]
        rows.append(cells)
    headers = ["epoch"]
    for key, dim in (("proj", 128), ("backbone", 128)):
        headers += [f"{key} mean cos", f"{key} cos centred", f"{key} mean share",
                    f"{key} eff. rank (of {dim})", f"{key} R@1"]
    return table(headers, rows)


def report(result: dict[str, Any], count: int) -> str:
    """Every table of one variant."""
    rounds = "; ".join(f"epoch {r['epoch']}: {r['num_clusters']} clusters, NMI {r['nmi']:.2f}, "
                       f"pair FP {r['cluster_fp_rate']:.2f}" for r in result["rounds"])
    return "\n\n".join([
        f"### {result['variant']} (seed {result['seed']}, {len(result['rows'])} steps, "
        f"{result['seconds']:.0f} s)" + (f"\n\nFINCH rounds: {rounds}" if rounds else ""),
        triplet_table(result, count), temporal_table(result, count),
        gradient_table(result, count), coherence_table(result), bn_table(result, count),
        health_table(result)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/tripdiag"),
                        help="data, frames, flow and runs (made once, then reused)")
    parser.add_argument("--epochs", type=int, default=20, help="8 steps an epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["slic", "supervised"],
                        choices=list(VARIANTS))
    parser.add_argument("--shape-probability", type=float, default=0.0,
                        help="make_dataset.class_shape_probability: 0 = motion only")
    parser.add_argument("--probe-every", type=int, default=5,
                        help="BatchNorm and eval-mode probes every this many steps")
    parser.add_argument("--health-every", type=int, default=5,
                        help="collapse measures and R@1 every this many epochs")
    parser.add_argument("--coherence-window", type=int, default=20,
                        help="steps whose gradients are summed for the coherence")
    parser.add_argument("--windows", type=int, default=4, help="step windows in the tables")
    parser.add_argument("--json", type=Path, default=None,
                        help="write every recorded row here (read back with --tables-from)")
    parser.add_argument("--tables-from", type=Path, default=None,
                        help="print the tables of an earlier --json file, train nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.tables_from is not None:
        results = json.loads(args.tables_from.read_text())["results"]
    else:
        info = machine_info()
        print_machine(info)
        prepare(args.workspace, args.shape_probability)
        results = []
        for variant in args.variants:
            results.append(run_variant(args.workspace, variant, args.seed, args.epochs,
                                       args.probe_every, args.health_every,
                                       args.coherence_window))
            if args.json is not None:
                args.json.write_text(json.dumps({"machine": info, "args": vars(args),
                                                 "results": results}, default=str))
    for result in results:
        print("\n" + report(result, args.windows))


if __name__ == "__main__":
    main()
