"""Measures of embedding collapse, and the warning a user sees when they say it happens.

On a set of embeddings (the training videos' centre clips, embedded for clustering or for
the kNN evaluation):
- mean pairwise cosine of distinct rows (1.0: every video has the same direction);
- uniformity (Wang & Isola, ICML 2020): log E exp(-2 ||u - v||^2) over pairs of distinct
  unit rows; 0 when all coincide, about -4 for rows spread evenly on a high-dimensional
  sphere (lower is better);
- effective rank (Roy & Vetterli, 2007; RankMe, Garrido et al. 2023): exp of the entropy of
  the normalised singular values of the unit rows, between 1 (one direction) and D.
Alignment, the mean ||u - v||^2 of positive pairs, is measured on the training step's
anchor/positive pairs (stages.training.slic_step).
"""

from __future__ import annotations

import numpy as np

PAIR_SAMPLE = 2_048  # rows for the pairwise measures (N^2 pairs); all rows for the rank
# Collapse, as warned about: nearly one direction, or a handful of dimensions in use.
COLLAPSED_COSINE = 0.9
COLLAPSED_RANK = 2.0


def _unit_rows(features: np.ndarray) -> np.ndarray:
    rows = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def mean_pairwise_cosine(unit: np.ndarray) -> float:
    """Mean cosine of the N(N-1) ordered pairs of distinct unit rows of (N, D) `unit`."""
    count = len(unit)
    total = unit.sum(axis=0)
    return float((total @ total - (unit * unit).sum()) / (count * (count - 1)))


def uniformity(unit: np.ndarray, temperature: float = 2.0) -> float:
    """log of the mean exp(-t ||u_i - u_j||^2) over distinct pairs of (N, D) unit rows."""
    squared = np.maximum(2.0 - 2.0 * (unit @ unit.T), 0.0)
    off_diagonal = ~np.eye(len(unit), dtype=bool)
    return float(np.log(np.exp(-temperature * squared[off_diagonal]).mean()))


def effective_rank(unit: np.ndarray) -> float:
    """exp(entropy) of the singular values of (N, D) rows, normalised to sum to 1."""
    singular = np.linalg.svd(unit, compute_uv=False)
    share = singular / singular.sum()
    share = share[share > 0]
    return float(np.exp(-(share * np.log(share)).sum()))


def embedding_health(features: np.ndarray, seed: int = 0) -> dict[str, float]:
    """mean_cosine, uniformity and effective_rank of (N, D) embeddings (N >= 2); the pairwise
    measures on a seeded sample of PAIR_SAMPLE rows when N is larger."""
    unit = _unit_rows(features)
    sample = unit
    if len(unit) > PAIR_SAMPLE:
        chosen = np.random.default_rng(seed).choice(len(unit), PAIR_SAMPLE, replace=False)
        sample = unit[np.sort(chosen)]
    return {"mean_cosine": mean_pairwise_cosine(sample), "uniformity": uniformity(sample),
            "effective_rank": effective_rank(unit)}


def collapse_warning(health: dict[str, float], dim: int) -> str | None:
    """A one-line warning with what to try when `health` says the embeddings collapsed."""
    cosine, rank = health["mean_cosine"], health["effective_rank"]
    if cosine < COLLAPSED_COSINE and (rank >= COLLAPSED_RANK or dim < 2 * COLLAPSED_RANK):
        return None
    return (f"the embeddings are collapsing (mean cosine {cosine:.3f}, effective rank "
            f"{rank:.1f} of {dim}): clusters and neighbours from them carry little; before "
            "any training step this is BatchNorm at its initial statistics (give "
            "pretrain.cluster_warmup_epochs a few epochs); later, check the pseudo-labels "
            "(pos FP in metrics.jsonl) and positive_distance/negative_distance against "
            "pretrain.margin")
