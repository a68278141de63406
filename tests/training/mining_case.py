"""One pretrain step of one rank, with the triplets it mined: shared by the quick test that
simulates ranks in one process and the gloo test that runs them as processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.clips.store import ClipStore
from stages.clips.triplets import EpochSampler, TripletClips
from stages.pretrain_config import PretrainConfig
from stages.slic_training import mining_group, triplet_settings
from stages.training import slic_step as step_module
from stages.training.compute import Compute
from stages.training.distributed import Distribution
from stages.training.loading import clip_loader
from stages.training.slic_step import LossSettings, pool_generators, slic_step

SETTINGS = PretrainConfig(clip_length=2, stride=1, crop_size=8, batch_size=8, mining_pool=4,
                          multiview=False, seed=3)
STEPS = 2

# A mined triplet as the clips it came from: the role and item of its anchor, positive and
# negative; role 0 is an item's anchor clip, 1 its positive clip.
Mined = tuple[int, int, int, int, int, int]


class FlatLinear(nn.Module):
    """(B, 3, 2, 8, 8) -> (B, 6): the same weights in every process (seeded), no BatchNorm,
    so a clip's embedding cannot depend on the rest of its batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 2 * 8 * 8, 6)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.fc(clips.flatten(1))


def mined_triplets(frames: Path, distribution: Distribution) -> list[list[Mined]]:
    """Each of the first STEPS steps of this rank: the triplets of its mining groups, as
    items, in the order the groups were mined."""
    store = ClipStore(frames)
    videos = np.arange(len(store.table))
    items = TripletClips(store, videos, triplet_settings(SETTINGS), SETTINGS.seed)
    items.set_clusters(videos % 3)
    group = mining_group(SETTINGS, distribution.world)
    sampler = EpochSampler(len(items), SETTINGS.seed, distribution.rank, distribution.world,
                           group)
    loader = clip_loader(items, sampler, batch_size=SETTINGS.batch_size // distribution.world,
                         workers=0, pin_memory=False, drop_last=True)
    model = FlatLinear()
    if torch.distributed.is_initialized():  # real ranks (gloo), not simulated ones
        model = nn.parallel.DistributedDataParallel(model)
    compute = Compute(torch.device("cpu"), "off", torch.contiguous_format, distribution)
    seen: list = []
    original = step_module.mine_triplets

    def recording(*args, **kwargs):
        found = original(*args, **kwargs)
        seen.append(found)
        return found

    step_module.mine_triplets = recording
    steps = []
    try:
        for step, batch in zip(range(STEPS), loader):
            seen.clear()
            groups = len(batch["index"]) // group
            outcome = slic_step(model, batch, np.full(len(videos), -1), LossSettings(),
                                pool_generators(SETTINGS.seed, 0, step, distribution.rank,
                                                distribution.world, groups), compute)
            outcome.loss.backward()
            members = batch["index"].view(groups, group).tolist()
            steps.append([_as_items(found, positions) for found, positions in zip(seen, members)])
    finally:
        step_module.mine_triplets = original
    return steps


def _as_items(found, positions: list[int]) -> list[Mined]:
    """Triplets of one group (indices into its anchors then positives) as items."""
    size = len(positions)

    def item(index: int) -> tuple[int, int]:
        return index // size, positions[index % size]

    return sorted((*item(int(a)), *item(int(p)), *item(int(n)))
                  for a, p, n in zip(found.anchors, found.positives, found.negatives))
