"""SLIC's losses: in-batch triplet mining on cluster labels, and temporal discrimination.

Distances are cosine distances d(u, v) = 1 - cos(u, v) on the projection output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def cosine_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, N) matrix of 1 - cos."""
    unit = F.normalize(embeddings.float(), dim=1)
    return 1.0 - unit @ unit.t()


@dataclass
class Triplets:
    """Mined triplets as (M,) int64 indices into the mined batch."""

    anchors: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor
    fallback: torch.Tensor  # (M,) bool: no negative was within the margin


def mine_triplets(distances: torch.Tensor, labels: torch.Tensor, margin: float,
                  generator: torch.Generator, official_fallback: bool = False) -> Triplets:
    """Every same-label pair (i < j) with a random negative closer than d(i, j) + margin.

    `distances` (N, N) and `labels` (N,). Negatives are the items of other labels; among those
    with d(i, n) < d(i, j) + margin one is drawn uniformly. When there is none, the hardest
    negative (smallest d(i, n)) is taken. `official_fallback=True` reproduces the official
    code's bug there: the position within the list of negatives is used as a batch index.
    Pairs with no negative at all are dropped.
    """
    count = len(labels)
    same = labels[:, None] == labels[None, :]
    upper = torch.triu(torch.ones(count, count, dtype=torch.bool, device=labels.device), 1)
    anchors, positives = torch.nonzero(same & upper, as_tuple=True)
    negative_mask = ~same[anchors]  # (M, N)
    keep = negative_mask.any(dim=1)
    anchors, positives, negative_mask = anchors[keep], positives[keep], negative_mask[keep]
    anchor_rows = distances[anchors]
    positive_distance = anchor_rows.gather(1, positives[:, None])
    within = negative_mask & (anchor_rows < positive_distance + margin)
    scores = torch.rand(anchor_rows.shape, generator=generator).to(anchor_rows.device)
    random_pick = scores.masked_fill(~within, -1.0).argmax(dim=1)
    hardest = anchor_rows.masked_fill(~negative_mask, float("inf")).argmin(dim=1)
    if official_fallback:
        # Position of the hardest negative among the negatives (ascending index order).
        hardest = negative_mask.long().cumsum(dim=1).gather(1, hardest[:, None])[:, 0] - 1
    fallback = ~within.any(dim=1)
    negatives = torch.where(fallback, hardest, random_pick)
    return Triplets(anchors, positives, negatives, fallback)


def triplet_loss(distances: torch.Tensor, triplets: Triplets, margin: float) -> torch.Tensor:
    """Mean of max(0, d(a, p) - d(a, n) + margin) over the triplets; 0 when there are none."""
    if len(triplets.anchors) == 0:
        return distances.sum() * 0.0
    positive = distances[triplets.anchors, triplets.positives]
    negative = distances[triplets.anchors, triplets.negatives]
    return F.relu(positive - negative + margin).mean()


def temporal_loss(anchor: torch.Tensor, augmented: torch.Tensor, positive: torch.Tensor,
                  margin: float) -> torch.Tensor:
    """Mean of max(0, d(x, aug x) - d(x, x+) + margin): the anchor must be closer to its own
    frames (augmented, maybe as flow) than to the positive clip. Inputs (B, D)."""
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=1)

    return F.relu(distance(anchor, augmented) - distance(anchor, positive) + margin).mean()
