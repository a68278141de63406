"""pretrain.mining_pool: a step's items form the same mining groups, and mine the same
triplets, on 1, 2 or 4 ranks (here ranks simulated in one process; the gloo test with real
processes is in test_distributed.py)."""

import numpy as np
import pytest

from stages.clips.triplets import EpochSampler
from stages.pretrain_config import PretrainConfig
from stages.runtime.errors import ConfigError
from stages.slic_training import mining_group
from stages.training.distributed import Distribution
from tests.training.mining_case import mined_triplets


def test_each_rank_mines_its_share_of_the_same_groups(tiny_frames):
    alone = mined_triplets(tiny_frames, Distribution())
    assert all(len(groups) == 2 for groups in alone)  # batch 8 in groups of 4
    assert any(triplets for groups in alone for triplets in groups)
    for world in (2,):
        ranks = [mined_triplets(tiny_frames, Distribution(rank, world, rank, "cpu"))
                 for rank in range(world)]
        for step, groups in enumerate(alone):
            # group j of a step sits on rank j % world, as its (j // world)-th group
            dealt = [ranks[j % world][step][j // world] for j in range(len(groups))]
            assert dealt == groups, step


def test_the_sampler_deals_whole_groups_in_step_order():
    alone = [position for _, position in EpochSampler(20, seed=1, group=4)]
    ranks = [[position for _, position in EpochSampler(20, seed=1, rank=r, world=2, group=4)]
             for r in range(2)]
    assert len(alone) == 20 and [len(r) for r in ranks] == [8, 8]  # 2 x 2 groups of 4
    groups = np.array(alone).reshape(-1, 4)
    assert ranks[0] == groups[[0, 2]].reshape(-1).tolist()
    assert ranks[1] == groups[[1, 3]].reshape(-1).tolist()


@pytest.mark.parametrize("batch, pool, world, group", [
    (32, 16, 1, 16), (32, 16, 2, 16), (8, 16, 1, 8), (32, 0, 4, 8), (104, 13, 8, 13)])
def test_the_group_is_the_pool_or_the_batch(batch, pool, world, group):
    assert mining_group(PretrainConfig(batch_size=batch, mining_pool=pool), world) == group


def test_a_pool_that_does_not_divide_a_rank_batch_is_refused_with_one_line():
    with pytest.raises(ConfigError, match="mining_pool 16 does not divide the 4 items") as error:
        mining_group(PretrainConfig(batch_size=32, mining_pool=16), 8)
    assert "\n" not in str(error.value) and "multiple of 128" in str(error.value)
