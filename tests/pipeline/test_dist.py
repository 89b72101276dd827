"""Rank detection (torchrun, SLURM) and disjoint sharding."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revise_prep.pipeline.dist import RankInfo, rank_info


def test_env_variants():
    assert rank_info({}) == RankInfo(0, 1, 0)
    assert rank_info({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == RankInfo(3, 8, 1)
    assert rank_info({"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "2"}) == RankInfo(5, 6, 2)
    # torchrun wins over SLURM when both are set (torchrun launched inside an allocation)
    assert rank_info({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).rank == 1
    with pytest.raises(ValueError):
        rank_info({"RANK": "4", "WORLD_SIZE": "4"})


@given(st.integers(0, 200), st.integers(1, 9))
def test_shards_are_disjoint_and_complete(n, world):
    items = list(range(n))
    shards = [RankInfo(r, world).shard(items) for r in range(world)]
    flat = sorted(x for s in shards for x in s)
    assert flat == items
