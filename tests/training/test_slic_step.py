"""One SLIC step's loss on tiny synthetic batches: it learns, it reaches every weight, and the
true labels feed only its statistics."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from stages.models.encoder import Encoder
from stages.training.compute import Compute
from stages.training.slic_step import LossSettings, slic_step, step_generator


class FloatClipsCompute(Compute):
    """Takes these tests' float clips as they are (they are about mining and the losses; the
    step's own preparation of uint8 clips has its test below)."""

    def prepare_clips(self, *parts: torch.Tensor, colour=None) -> torch.Tensor:
        return torch.cat(parts)


CPU = FloatClipsCompute(torch.device("cpu"), "off", torch.contiguous_format)
CLIP = (3, 2, 4, 4)  # (C, T, H, W)


class LinearEncoder(nn.Module):
    """Flattened clip -> (B, 8): a model whose embeddings a few SGD steps can move anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(int(np.prod(CLIP)), 8)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.fc(clips.flatten(1))


def batch_of(patterns: torch.Tensor, clusters: list[int], seed: int = 0,
             noise: float = 0.1) -> dict[str, torch.Tensor]:
    """Anchors, positives and augmented anchors: each item its cluster's pattern plus noise;
    every item's positive comes from its own video."""
    generator = torch.Generator().manual_seed(seed)
    base = patterns[clusters]

    def noisy() -> torch.Tensor:
        return base + noise * torch.randn(base.shape, generator=generator)

    count = len(clusters)
    return {"anchor": noisy(), "positive": noisy(), "augmented": noisy(),
            "cluster": torch.tensor(clusters), "index": torch.arange(count),
            "positive_index": torch.arange(count)}


def test_step_generator_depends_on_every_coordinate():
    def draws(*key: int) -> torch.Tensor:
        return torch.rand(6, generator=step_generator(*key))

    assert torch.equal(draws(1, 2, 3, 0), draws(1, 2, 3, 0))
    for other in [(2, 2, 3, 0), (1, 3, 3, 0), (1, 2, 4, 0), (1, 2, 3, 1)]:
        assert not torch.equal(draws(1, 2, 3, 0), draws(*other)), other


def test_loss_falls_on_a_separable_batch():
    torch.manual_seed(0)
    encoder = LinearEncoder()
    patterns = torch.randn(2, *CLIP)
    batch = batch_of(patterns, [0, 0, 0, 1, 1, 1], noise=1.0)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.5)
    truth = np.array([0, 0, 0, 1, 1, 1])
    losses = []
    for step in range(20):
        outcome = slic_step(encoder, batch, truth, LossSettings(), [step_generator(0, 0, step, 0)],
                            CPU)
        optimizer.zero_grad()
        outcome.loss.backward()
        optimizer.step()
        losses.append(float(outcome.loss.detach()))
    assert losses[0] > 0.1, losses  # a random encoder violates the margins
    assert losses[-1] < 0.1 * losses[0], losses


def test_gradients_reach_every_weight_of_the_encoder():
    torch.manual_seed(1)
    encoder = Encoder("r3d_tiny", hidden_dim=16, out_dim=8)
    clips = torch.randn(2, 3, 4, 16, 16)
    batch = {"anchor": clips[[0, 0, 1, 1]] + 0.3 * torch.randn(4, 3, 4, 16, 16),
             "positive": clips[[0, 0, 1, 1]] + 0.3 * torch.randn(4, 3, 4, 16, 16),
             "augmented": clips[[0, 0, 1, 1]] + 0.3 * torch.randn(4, 3, 4, 16, 16),
             "cluster": torch.tensor([0, 0, 1, 1]), "index": torch.arange(4),
             "positive_index": torch.arange(4)}
    outcome = slic_step(encoder, batch, np.zeros(4, np.int64), LossSettings(margin=0.5),
                        [step_generator(0, 0, 0, 0)], CPU)
    outcome.loss.backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_true_labels_feed_the_statistics_and_never_the_loss():
    """4 videos, clusters [0, 0, 1, 1]: the mined batch (anchors then positives) has 6
    same-cluster pairs per cluster, 12 triplets, whatever negatives are drawn."""
    torch.manual_seed(2)
    encoder = LinearEncoder()
    batch = batch_of(torch.randn(2, *CLIP), [0, 0, 1, 1], seed=3)

    def outcome(truth: list[int]):
        return slic_step(encoder, batch, np.array(truth), LossSettings(),
                         [step_generator(5, 1, 2, 0)], CPU)

    # Cluster 0 holds videos of classes 0 and 2: 4 of its 6 pairs join two classes. No
    # negative (from the other cluster) has its anchor's class.
    mixed = outcome([0, 2, 1, 1])
    assert (mixed.triplets, mixed.labelled) == (12, 12)
    assert (mixed.false_positives, mixed.false_negatives) == (4, 0)
    # One class for all: no pair is false, every negative is.
    single = outcome([1, 1, 1, 1])
    assert (single.false_positives, single.false_negatives, single.labelled) == (0, 12, 12)
    unknown = outcome([-1, -1, -1, -1])
    assert (unknown.false_positives, unknown.false_negatives, unknown.labelled) == (0, 0, 0)
    assert torch.equal(mixed.loss, single.loss) and torch.equal(mixed.loss, unknown.loss)
    assert mixed.triplet == single.triplet and mixed.temporal == single.temporal


def test_temporal_term_is_weighted_and_can_be_turned_off():
    torch.manual_seed(3)
    encoder = LinearEncoder()
    batch = batch_of(torch.randn(2, *CLIP), [0, 0, 1, 1], noise=1.0)
    truth = np.zeros(4, np.int64)

    def outcome(**settings):
        return slic_step(encoder, batch, truth, LossSettings(**settings),
                         [step_generator(0, 0, 0, 0)], CPU)

    plain = outcome(temporal_margin=0.5)
    assert plain.temporal > 0
    assert plain.loss.item() == pytest.approx(plain.triplet + plain.temporal, rel=1e-6)
    doubled = outcome(temporal_margin=0.5, temporal_weight=2.0)
    assert doubled.triplet == plain.triplet and doubled.temporal == plain.temporal
    assert doubled.loss.item() == pytest.approx(plain.triplet + 2 * plain.temporal, rel=1e-6)
    off = outcome(temporal=False)
    assert off.temporal == 0.0 and off.loss.item() == pytest.approx(off.triplet, rel=1e-6)


def test_a_batch_without_two_clusters_has_no_triplets_and_zero_triplet_loss():
    encoder = LinearEncoder()
    batch = batch_of(torch.randn(2, *CLIP), [1, 1, 1])
    outcome = slic_step(encoder, batch, np.zeros(3, np.int64), LossSettings(temporal=False),
                        [step_generator(0, 0, 0, 0)], CPU)
    assert outcome.triplets == 0 and outcome.triplet == 0.0 and outcome.loss.item() == 0.0
    outcome.loss.backward()  # still a graph: a step with no triplets does not crash training


def test_alignment_is_the_mean_squared_gap_of_unit_anchor_positive_pairs():
    torch.manual_seed(0)
    encoder = LinearEncoder()
    batch = batch_of(torch.randn(2, *CLIP), [0, 0, 1, 1], noise=0.5)
    outcome = slic_step(encoder, batch, np.full(4, -1), LossSettings(),
                        [step_generator(0, 0, 0, 0)], CPU)
    with torch.no_grad():
        anchors = nn.functional.normalize(encoder(batch["anchor"]), dim=1)
        positives = nn.functional.normalize(encoder(batch["positive"]), dim=1)
    expected = ((anchors - positives) ** 2).sum(dim=1).mean().item()
    assert outcome.alignment == pytest.approx(expected, rel=1e-5)
    same = {**batch, "positive": batch["anchor"]}  # identical views: perfectly aligned
    outcome = slic_step(encoder, same, np.full(4, -1), LossSettings(), [step_generator(0, 0, 0, 0)],
                        CPU)
    assert outcome.alignment == pytest.approx(0.0, abs=1e-10)


def test_mined_distances_are_those_of_the_step_triplets():
    from stages.training.losses import cosine_distances, mine_triplets

    torch.manual_seed(1)
    encoder = LinearEncoder()
    batch = batch_of(torch.randn(3, *CLIP), [0, 0, 1, 1, 2, 2], noise=0.5)
    settings = LossSettings()
    outcome = slic_step(encoder, batch, np.full(6, -1), settings, [step_generator(0, 0, 0, 0)],
                        CPU)
    with torch.no_grad():
        mined = torch.cat([encoder(batch["anchor"]), encoder(batch["positive"])])
    distances = cosine_distances(mined)
    clusters = torch.cat([batch["cluster"], batch["cluster"]])
    triplets = mine_triplets(distances, clusters, settings.margin, step_generator(0, 0, 0, 0),
                             settings.official_fallback)
    assert len(triplets.anchors) == outcome.triplets > 0
    assert outcome.positive_distance == pytest.approx(
        distances[triplets.anchors, triplets.positives].mean().item(), rel=1e-5)
    assert outcome.negative_distance == pytest.approx(
        distances[triplets.anchors, triplets.negatives].mean().item(), rel=1e-5)
    assert outcome.positive_distance != outcome.negative_distance


# A step worked out on paper. The encoder is the identity, so each "clip" is its own
# embedding. Cluster 1's clips all sit at the pole B = (0, 0, 1); cluster 0's on the circle 30°
# from B, at the azimuths below. So every negative of an anchor is equally far from it,
# whichever one the step draws, and the losses have one value:
#   d(B, x) = 1 - cos 30° for x on the circle;
#   d(x, y) = sin² 30° (1 - cos Δazimuth) for x, y on the circle.
POLAR = math.radians(30)


def on_circle(azimuth_degrees: float) -> list[float]:
    azimuth = math.radians(azimuth_degrees)
    return [math.sin(POLAR) * math.cos(azimuth), math.sin(POLAR) * math.sin(azimuth),
            math.cos(POLAR)]


POLE = [0.0, 0.0, 1.0]
HAND_BATCH = {
    # items 0 and 1 in cluster 0, items 2 and 3 in cluster 1
    "anchor": torch.tensor([on_circle(0), on_circle(60), POLE, POLE]),
    "positive": torch.tensor([on_circle(20), on_circle(150), POLE, POLE]),
    "augmented": torch.tensor([on_circle(10), on_circle(200), POLE, on_circle(0)]),
    "cluster": torch.tensor([0, 0, 1, 1]), "index": torch.arange(4),
    "positive_index": torch.arange(4),
}


def circle_distance(first: float, second: float) -> float:
    return math.sin(POLAR) ** 2 * (1 - math.cos(math.radians(first - second)))


def hand_triplets(margin: float) -> tuple[list[float], list[float], int]:
    """(d(a, p), d(a, n)) of the 12 mined triplets, and how many fall back to the hardest.

    The mined batch is the 4 anchors then the 4 positives; its same-cluster pairs are the 6
    pairs of {a0, a1, p0, p1} (azimuths 0, 60, 20, 150) and the 6 of {a2, a3, p2, p3} (at B)."""
    pole_distance = 1 - math.cos(POLAR)
    circle = [0, 60, 20, 150]
    positives = [circle_distance(circle[i], circle[j])
                 for i in range(4) for j in range(i + 1, 4)] + [0.0] * 6
    negatives = [pole_distance] * 12
    # A negative is drawn among those with d(a, n) < d(a, p) + margin, else the hardest.
    fallbacks = sum(not n < p + margin for p, n in zip(positives, negatives))
    return positives, negatives, fallbacks


@pytest.mark.parametrize("margin", [0.2, 0.05])
def test_one_step_equals_a_case_worked_by_hand(margin):
    settings = LossSettings(margin=margin, temporal_margin=0.04)
    outcome = slic_step(nn.Identity(), HAND_BATCH, np.array([0, 0, 1, 1]), settings,
                        [step_generator(0, 0, 0, 0)], CPU)
    positives, negatives, fallbacks = hand_triplets(margin)
    triplet = np.mean([max(0.0, p - n + margin) for p, n in zip(positives, negatives)])
    # aug(x) must be nearer to x than x's positive is, by the temporal margin:
    # d(x, aug x) and d(x, x+) of the four items.
    own = [circle_distance(0, 10), circle_distance(60, 200), 0.0, 1 - math.cos(POLAR)]
    other = [circle_distance(0, 20), circle_distance(60, 150), 0.0, 0.0]
    temporal = np.mean([max(0.0, a - p + 0.04) for a, p in zip(own, other)])
    assert (outcome.triplets, outcome.fallbacks) == (12, fallbacks)
    assert outcome.triplet == pytest.approx(triplet, abs=1e-6)
    assert outcome.temporal == pytest.approx(temporal, abs=1e-6)
    assert float(outcome.loss) == pytest.approx(triplet + temporal, abs=1e-6)
    assert outcome.positive_distance == pytest.approx(np.mean(positives), abs=1e-6)
    assert outcome.negative_distance == pytest.approx(np.mean(negatives), abs=1e-6)
    # The clusters are the classes: no mined pair joins two classes, no negative shares one.
    assert (outcome.false_positives, outcome.false_negatives, outcome.labelled) == (0, 0, 12)


def test_the_hand_case_has_fallbacks_only_at_the_small_margin():
    assert hand_triplets(0.2)[2] == 0 and hand_triplets(0.05)[2] == 8


def test_the_official_fallback_setting_reaches_the_mining():
    """The hand case at margin 0.05 with the official code's fallback bug. The two fallbacks of
    cluster 0 (pairs a0-p0 and a1-p0 of the mined batch, too close for any negative within
    the margin) take batch index 0, the position of their hardest negative among the
    negatives: a0 itself (d = 0) and a0 for a1 (azimuths 60 and 0). Both share their anchor's
    class: 2 false negatives. Cluster 1's six fallbacks also land on index 0, a true negative
    at the pole distance like any other."""
    margin = 0.05
    settings = LossSettings(margin=margin, temporal=False, official_fallback=True)
    outcome = slic_step(nn.Identity(), HAND_BATCH, np.array([0, 0, 1, 1]), settings,
                        [step_generator(0, 0, 0, 0)], CPU)
    positives, negatives, fallbacks = hand_triplets(margin)
    # hand_triplets lists cluster 0's pairs (0, 60), (0, 20), (0, 150), (60, 20), ...: the
    # fallbacks a0-p0 and a1-p0 are its second and fourth.
    negatives[1], negatives[3] = 0.0, circle_distance(60, 0)
    triplet = np.mean([max(0.0, p - n + margin) for p, n in zip(positives, negatives)])
    assert (outcome.triplets, outcome.fallbacks) == (12, fallbacks)
    assert (outcome.false_positives, outcome.false_negatives, outcome.labelled) == (0, 2, 12)
    assert outcome.negative_distance == pytest.approx(np.mean(negatives), abs=1e-6)
    assert outcome.triplet == pytest.approx(triplet, abs=1e-6)


def test_a_triplet_is_labelled_only_when_all_three_videos_have_a_true_label():
    """The hand case with the videos of cluster 0 unlabelled: cluster 0's triplets have
    unlabelled anchors and positives, cluster 1's have unlabelled negatives (from cluster 0)."""
    outcome = slic_step(nn.Identity(), HAND_BATCH, np.array([-1, -1, 1, 1]), LossSettings(),
                        [step_generator(0, 0, 0, 0)], CPU)
    assert outcome.triplets == 12
    assert (outcome.false_positives, outcome.false_negatives, outcome.labelled) == (0, 0, 0)


def test_a_step_without_triplets_reports_zero_distances():
    encoder = LinearEncoder()
    batch = batch_of(torch.randn(2, *CLIP), [1, 1, 1])
    outcome = slic_step(encoder, batch, np.zeros(3, np.int64), LossSettings(),
                        [step_generator(0, 0, 0, 0)], CPU)
    assert outcome.triplets == 0
    assert (outcome.positive_distance, outcome.negative_distance) == (0.0, 0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_step_on_cuda_equals_the_step_on_cpu():
    """The hand case on the GPU: every tensor of the step (clusters, masks, the temporal
    term when it is off) must live on the clips' device, and the numbers match the CPU's."""
    gpu = Compute(torch.device("cuda"), "off", torch.contiguous_format)
    for temporal in (True, False):
        settings = LossSettings(margin=0.05, temporal=temporal)
        on_cpu, on_gpu = (slic_step(nn.Identity(), HAND_BATCH, np.array([0, 0, 1, 1]), settings,
                                    [step_generator(0, 0, 0, 0)], compute)
                          for compute in (CPU, gpu))
        assert on_gpu.loss.device.type == "cuda"
        assert (on_gpu.triplets, on_gpu.fallbacks) == (on_cpu.triplets, on_cpu.fallbacks)
        assert on_gpu.loss.item() == pytest.approx(on_cpu.loss.item(), abs=1e-5)
        assert on_gpu.negative_distance == pytest.approx(on_cpu.negative_distance, abs=1e-5)


class InputRecorder(nn.Module):
    """(B, 3, T, H, W) -> (B, 3) channel means; keeps the input it was given."""

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.seen = clips
        return clips.mean(dim=(2, 3, 4))


def test_the_step_feeds_the_encoder_its_uint8_clips_joined_and_normalised():
    from stages.clips.augment import normalise_clips

    generator = torch.Generator().manual_seed(0)
    parts = {key: torch.randint(0, 256, (2, *CLIP), dtype=torch.uint8, generator=generator)
             for key in ("anchor", "positive", "augmented")}
    batch = {**parts, "cluster": torch.tensor([0, 1]), "index": torch.arange(2),
             "positive_index": torch.arange(2)}
    encoder = InputRecorder()
    compute = Compute(torch.device("cpu"), "off", torch.contiguous_format)
    slic_step(encoder, batch, np.full(2, -1), LossSettings(), [step_generator(0, 0, 0, 0)], compute)
    expected = normalise_clips(torch.cat([parts["anchor"], parts["positive"],
                                          parts["augmented"]]))
    assert encoder.seen.dtype == torch.float32 and torch.equal(encoder.seen, expected)
