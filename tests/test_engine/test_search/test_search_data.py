import pytest

from nasbnn_mm.engine.search import (ShardedEpochSampler, StridedSampler,
                                     strided_indices)


def test_strided_indices_cover_the_dataset_exactly():
    for num in range(12):
        for world in range(1, 5):
            parts = [
                list(strided_indices(num, r, world)) for r in range(world)
            ]
            flat = [i for part in parts for i in part]
            assert sorted(flat) == list(range(num))  # no pad, no duplicate
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert list(StridedSampler(10, rank=2, world_size=4)) == [2, 6]
    assert len(StridedSampler(10, rank=2, world_size=4)) == 2
    assert list(StridedSampler(3)) == [0, 1, 2]  # not distributed
    with pytest.raises(ValueError, match='rank: 4 not in'):
        strided_indices(10, 4, 4)
    with pytest.raises(ValueError, match='world_size: 0'):
        strided_indices(10, 0, 0)


def test_sharded_sampler_splits_global_batches():
    indices = list(range(100, 110))
    parts = [
        list(ShardedEpochSampler(indices, 2, seed=3, rank=r, world_size=2))
        for r in range(2)
    ]
    single = list(ShardedEpochSampler(indices, 4, 3, 0, 1))
    # batch b of rank r is part of global batch b; the ranks cover it
    for b in range(2):
        got = sorted(parts[0][2 * b:2 * b + 2] + parts[1][2 * b:2 * b + 2])
        assert got == sorted(single[4 * b:4 * b + 4])
    assert len(single) == 8  # 10 // 4 global batches, last one dropped
    with pytest.raises(ValueError, match='fewer than one global batch'):
        ShardedEpochSampler(indices, 8, 0, 0, 2)
