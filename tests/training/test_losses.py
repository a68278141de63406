import numpy as np
import pytest
import torch

from stages.training.losses import (
    cosine_distances,
    mine_triplets,
    temporal_loss,
    triplet_loss,
)


def _batch(seed: int, count: int = 12, classes: int = 3):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(count, 8, generator=generator)
    labels = torch.randint(0, classes, (count,), generator=generator)
    return cosine_distances(embeddings), labels


@pytest.mark.parametrize("seed", range(5))
def test_mining_matches_the_rule(seed):
    distances, labels = _batch(seed)
    margin = 0.2
    found = mine_triplets(distances, labels, margin, torch.Generator().manual_seed(seed))
    d, y = distances.numpy(), labels.numpy()
    expected_pairs = {(i, j) for i in range(len(y)) for j in range(i + 1, len(y))
                      if y[i] == y[j] and (y != y[i]).any()}
    pairs = set(zip(found.anchors.tolist(), found.positives.tolist()))
    assert pairs == expected_pairs
    for a, p, n, fallback in zip(found.anchors.tolist(), found.positives.tolist(),
                                 found.negatives.tolist(), found.fallback.tolist()):
        assert y[n] != y[a]
        negatives = np.flatnonzero(y != y[a])
        within = negatives[d[a, negatives] < d[a, p] + margin]
        if len(within):
            assert not fallback and n in within
        else:
            assert fallback and n == negatives[np.argmin(d[a, negatives])]


def test_random_negative_is_spread_over_candidates():
    distances = torch.zeros(4, 4)  # every negative is within the margin
    labels = torch.tensor([0, 0, 1, 2])
    picks = {int(mine_triplets(distances, labels, 0.2,
                               torch.Generator().manual_seed(s)).negatives[0]) for s in range(30)}
    assert picks == {2, 3}


def test_official_fallback_reproduces_the_index_bug():
    # Anchor 0 and positive 1 are identical; negatives 2, 3 lie far beyond the margin.
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-0.2, 1.0]])
    distances, labels = cosine_distances(embeddings), torch.tensor([0, 0, 1, 1])
    correct = mine_triplets(distances, labels, 0.2, torch.Generator().manual_seed(0))
    buggy = mine_triplets(distances, labels, 0.2, torch.Generator().manual_seed(0),
                          official_fallback=True)
    pair = (correct.anchors == 0) & (correct.positives == 1)
    assert correct.fallback[pair].item()
    assert correct.negatives[pair].item() == 2  # the nearer negative
    assert buggy.negatives[pair].item() == 0  # its position among the negatives, as an index


def test_loss_values():
    distances = torch.tensor([[0.0, 0.3, 0.4], [0.3, 0.0, 0.9], [0.4, 0.9, 0.0]])
    found = mine_triplets(distances, torch.tensor([0, 0, 1]), 0.2, torch.Generator())
    assert triplet_loss(distances, found, 0.2).item() == pytest.approx(0.3 - 0.4 + 0.2)
    none = mine_triplets(distances, torch.tensor([0, 1, 2]), 0.2, torch.Generator())
    assert len(none.anchors) == 0 and triplet_loss(distances, none, 0.2).item() == 0.0
    anchor = torch.tensor([[1.0, 0.0]])
    augmented = torch.tensor([[0.0, 1.0]])  # d = 1
    positive = torch.tensor([[1.0, 1.0]])  # d = 1 - 1/sqrt(2)
    expected = 1.0 - (1 - 2 ** -0.5) + 0.04
    assert temporal_loss(anchor, augmented, positive, 0.04).item() == pytest.approx(expected)


def test_a_negative_exactly_at_the_margin_is_not_within_it():
    """d(a, n) = d(a, p) + margin exactly (binary fractions): "closer than" is strict, so the
    pair falls back to its hardest negative, the same item here."""
    distances = torch.tensor([[0.0, 0.25, 0.5], [0.25, 0.0, 0.5], [0.5, 0.5, 0.0]])
    found = mine_triplets(distances, torch.tensor([0, 0, 1]), 0.25, torch.Generator())
    assert found.anchors.tolist() == [0] and found.negatives.tolist() == [2]
    assert found.fallback.tolist() == [True]
    nearer = mine_triplets(distances, torch.tensor([0, 0, 1]), 0.2500001, torch.Generator())
    assert nearer.fallback.tolist() == [False]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_mining_on_cuda_draws_the_same_triplets_as_on_cpu():
    """The random scores come from a CPU generator and move to the distances' device, so a
    seed mines the same triplets on either device."""
    distances, labels = _batch(0)
    on_cpu = mine_triplets(distances, labels, 0.2, torch.Generator().manual_seed(1))
    on_gpu = mine_triplets(distances.cuda(), labels.cuda(), 0.2, torch.Generator().manual_seed(1))
    for name in ("anchors", "positives", "negatives", "fallback"):
        found = getattr(on_gpu, name)
        assert found.device.type == "cuda", name
        assert torch.equal(found.cpu(), getattr(on_cpu, name)), name
