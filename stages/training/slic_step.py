"""One SLIC training step's loss: a forward of [anchors; positives; augmented anchors], triplet
mining on the pseudo-labels of anchors and positives, and the temporal loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stages.training.compute import Compute
from stages.training.losses import cosine_distances, mine_triplets, temporal_loss, triplet_loss


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
    """The loss to minimise and the step's statistics (plain floats)."""

    loss: torch.Tensor
    triplet: float
    temporal: float
    triplets: int
    fallbacks: int
    false_positives: int  # mined triplets whose positive has another true class
    false_negatives: int  # mined triplets whose negative has the anchor's true class
    labelled: int  # mined triplets whose anchor, positive and negative have true labels
    alignment: float  # mean ||a - p||^2 of the unit anchor/positive pairs (Wang & Isola)
    positive_distance: float  # mean cosine distance d(a, p) of the mined triplets
    negative_distance: float  # mean cosine distance d(a, n) of the mined triplets


def step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """The generator of the random negative choices of one step on one rank."""
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def slic_step(encoder: torch.nn.Module, batch: dict[str, torch.Tensor], true_labels: np.ndarray,
              settings: LossSettings, generator: torch.Generator, compute: Compute
              ) -> StepOutcome:
    """Loss of one batch. `true_labels` (N,) int64 of the training videos (-1 unknown) only
    feeds the false-positive / false-negative statistics, never the loss."""
    size = len(batch["index"])
    device = compute.device
    clips = compute.prepare_clips(batch["anchor"], batch["positive"], batch["augmented"])
    with compute.autocast():
        embeddings = encoder(clips)
    anchors, positives, augmented = embeddings.float().split(size)
    mined = torch.cat([anchors, positives])
    clusters = torch.cat([batch["cluster"], batch["cluster"]]).to(device)
    distances = cosine_distances(mined)
    triplets = mine_triplets(distances, clusters, settings.margin, generator,
                             settings.official_fallback)
    triplet = triplet_loss(distances, triplets, settings.margin)
    temporal = (temporal_loss(anchors, augmented, positives, settings.temporal_margin)
                if settings.temporal else torch.zeros((), device=device))
    loss = triplet + settings.temporal_weight * temporal
    videos = torch.cat([batch["index"], batch["positive_index"]]).numpy()
    truth = true_labels[videos]
    a, p, n = (truth[t.cpu().numpy()] for t in (triplets.anchors, triplets.positives,
                                                 triplets.negatives))
    known = (a >= 0) & (p >= 0) & (n >= 0)
    with torch.no_grad():
        gap = F.normalize(anchors, dim=1) - F.normalize(positives, dim=1)
        alignment = float(gap.pow(2).sum(dim=1).mean())
        # Against the margin these say whether the loss can fall (benchmarks/RESULTS.md 14).
        d_ap = distances[triplets.anchors, triplets.positives]
        d_an = distances[triplets.anchors, triplets.negatives]
        positive_distance = float(d_ap.mean()) if len(d_ap) else 0.0
        negative_distance = float(d_an.mean()) if len(d_an) else 0.0
    return StepOutcome(loss, float(triplet.detach()), float(temporal.detach()),
                       len(triplets.anchors), int(triplets.fallback.sum()),
                       int((known & (a != p)).sum()), int((known & (a == n)).sum()),
                       int(known.sum()), alignment, positive_distance, negative_distance)
