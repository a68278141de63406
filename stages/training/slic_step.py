"""One SLIC training step's loss: a forward of [anchors; positives; augmented anchors], triplet
mining on the pseudo-labels of anchors and positives, and the temporal loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stages.training.compute import Compute
from stages.training.losses import (
    Triplets,
    cosine_distances,
    mine_triplets,
    temporal_loss,
    triplet_loss,
)


@dataclass(frozen=True)
class LossSettings:
    """The losses of a SLIC step. The defaults are the paper's, for tests and benchmarks; a
    run takes every value from its pretrain section (`pretrain.SlicTraining`)."""

    margin: float = 0.2
    temporal: bool = True
    temporal_margin: float = 0.04
    temporal_weight: float = 1.0
    official_fallback: bool = False


@dataclass
class StepOutcome:
    """The loss to minimise and the step's statistics, each a 0-dim float32 tensor on the
    device: reading one waits for the GPU, so the trainer sums them there and reads the
    totals once an epoch."""

    loss: torch.Tensor
    triplet: torch.Tensor
    temporal: torch.Tensor
    triplets: torch.Tensor
    fallbacks: torch.Tensor
    false_positives: torch.Tensor  # mined triplets whose positive has another true class
    false_negatives: torch.Tensor  # mined triplets whose negative has the anchor's true class
    labelled: torch.Tensor  # mined triplets whose anchor, positive and negative have labels
    alignment: torch.Tensor  # mean ||a - p||^2 of the unit anchor/positive pairs
    positive_distance: torch.Tensor  # mean cosine distance d(a, p) of the mined triplets
    negative_distance: torch.Tensor  # mean cosine distance d(a, n) of the mined triplets


def step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """The generator of the random negative choices of one step on one rank."""
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def pool_generators(seed: int, epoch: int, step: int, rank: int, world: int, pools: int
                    ) -> list[torch.Generator]:
    """The generators of a rank's `pools` mining groups in one step: group j of rank r is
    group r + world * j of the step (the order `EpochSampler` deals them in), so each group
    draws the same negatives whatever the number of ranks."""
    return [step_generator(seed, epoch, step, rank + world * group) for group in range(pools)]


def slic_step(encoder: torch.nn.Module, batch: dict[str, torch.Tensor],
              true_labels: np.ndarray | torch.Tensor, settings: LossSettings,
              generators: list[torch.Generator], compute: Compute) -> StepOutcome:
    """Loss of one batch of B items in len(generators) mining groups of equal size (group j:
    items j * B/G .. (j+1) * B/G - 1, mined with generators[j]). Triplets are mined within a
    group, the triplet loss is the mean over groups of each group's mean, the temporal loss the
    mean over items. `true_labels` (N,) int64 of the training videos (-1 unknown; a tensor on
    the device spares a copy every step) only feeds the false-positive / false-negative
    statistics, never the loss. Mining's selection of same-label pairs is the step's one wait
    for the device."""
    size, groups = len(batch["index"]), len(generators)
    if groups < 1 or size % groups:
        raise ValueError(f"{size} items cannot make {groups} equal mining groups")
    device = compute.device
    views = ("anchor", "positive", "augmented")
    colour = [batch[f"{view}_colour"] for view in views] if "anchor_colour" in batch else None
    clips = compute.prepare_clips(*(batch[view] for view in views), colour=colour)
    with compute.autocast():
        embeddings = encoder(clips)
    anchors, positives, augmented = embeddings.float().split(size)
    clusters = batch["cluster"].to(device, non_blocking=True)
    videos = torch.stack([batch["index"], batch["positive_index"]]).to(device, non_blocking=True)
    truth = torch.as_tensor(true_labels).to(device, non_blocking=True)[videos]  # (2, B)
    pool = size // groups
    losses, found = [], []
    for group, generator in enumerate(generators):
        part = slice(group * pool, (group + 1) * pool)
        distances = cosine_distances(torch.cat([anchors[part], positives[part]]))
        triplets = mine_triplets(distances, torch.cat([clusters[part], clusters[part]]),
                                 settings.margin, generator, settings.official_fallback)
        losses.append(triplet_loss(distances, triplets, settings.margin))
        found.append(_group_figures(distances, triplets, truth[:, part].reshape(-1)))
    triplet = torch.stack(losses).mean()
    temporal = (temporal_loss(anchors, augmented, positives, settings.temporal_margin)
                if settings.temporal else torch.zeros((), device=device))
    loss = triplet + settings.temporal_weight * temporal
    with torch.no_grad():
        gap = F.normalize(anchors, dim=1) - F.normalize(positives, dim=1)
        alignment = gap.pow(2).sum(dim=1).mean()
        totals = torch.stack(found).sum(dim=0)
        mined = totals[0].clamp(min=1)
    return StepOutcome(loss, triplet.detach(), temporal.detach(), totals[0], totals[1],
                       totals[2], totals[3], totals[4], alignment, totals[5] / mined,
                       totals[6] / mined)


def _group_figures(distances: torch.Tensor, triplets: Triplets, truth: torch.Tensor
                   ) -> torch.Tensor:
    """(7,) float32 on the device: one group's triplets, fallbacks, false positives, false
    negatives, labelled triplets and the sums of d(a, p) and d(a, n). `truth` (2P,) true
    labels of the group's anchors then positives, -1 unknown."""
    a, p, n = (truth[t] for t in (triplets.anchors, triplets.positives, triplets.negatives))
    known = (a >= 0) & (p >= 0) & (n >= 0)
    with torch.no_grad():
        d_ap = distances[triplets.anchors, triplets.positives].sum()
        d_an = distances[triplets.anchors, triplets.negatives].sum()
    counts = torch.stack([torch.ones_like(a).sum(), triplets.fallback.sum(),
                          (known & (a != p)).sum(), (known & (a == n)).sum(), known.sum()])
    return torch.cat([counts.float(), torch.stack([d_ap, d_an]).float()])
