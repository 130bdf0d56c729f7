"""Data of the search problems: exact rank splits and seeded loaders.

A search must score a candidate the same whatever the number of ranks and
whatever was evaluated before, so the loaders here replace the configs'
samplers: :class:`StridedSampler` splits an evaluation split across ranks
without padding, and :class:`ShardedEpochSampler` gives each rank its part
of every global batch of a seeded epoch.
"""
from typing import Iterator, List, Optional, Sequence

import torch
from mmengine.dist import get_dist_info
from mmengine.registry import DATASETS
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset, Sampler

from nasbnn_mm.utils.typing_utils import ConfigType

__all__ = [
    'strided_indices', 'StridedSampler', 'ShardedEpochSampler',
    'build_dataset', 'build_loader'
]


def strided_indices(num_samples: int, rank: int, world_size: int) -> range:
    """Indices of a dataset that ``rank`` evaluates: every world_size-th.

    The ranks' subsets are disjoint and cover ``range(num_samples)``
    exactly: nothing is padded or repeated, so correct/total counts summed
    over ranks are the exact counts of the whole dataset.

    Args:
        num_samples (int): Dataset length.
        rank (int): This rank, in ``[0, world_size)``.
        world_size (int): Number of ranks, ``>= 1``.

    Example:
        >>> list(strided_indices(7, 1, 3))
        [1, 4]
    """
    if world_size < 1:
        raise ValueError(f'world_size: {world_size} must be >= 1')
    if not 0 <= rank < world_size:
        raise ValueError(f'rank: {rank} not in [0, {world_size})')
    if num_samples < 0:
        raise ValueError(f'num_samples: {num_samples} must be >= 0')
    return range(rank, num_samples, world_size)


class StridedSampler(Sampler):
    """Yield :func:`strided_indices` in order (no shuffling, no padding).

    Args:
        num_samples (int): Dataset length.
        rank (int, optional): Defaults to this process's rank.
        world_size (int, optional): Defaults to the world size.

    Example:
        >>> list(StridedSampler(10, rank=2, world_size=4))
        [2, 6]
    """

    def __init__(self,
                 num_samples: int,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        dist_rank, dist_world = get_dist_info()
        self.indices = strided_indices(
            num_samples, dist_rank if rank is None else rank,
            dist_world if world_size is None else world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ShardedEpochSampler(Sampler):
    """This rank's share of one epoch's seeded order, batch by batch.

    The epoch's order is ``indices`` permuted by a generator seeded with
    ``seed``; it is cut into global batches of ``batch_size * world_size``
    (an incomplete last one is dropped) and rank ``r`` gets positions
    ``r, r + W, ...`` of each, so that its ``batch_size`` consecutive
    indices are its part of one global batch. Averaging the ranks'
    gradients then gives the gradient of the global batch.

    Args:
        indices (Sequence[int]): Dataset indices to draw from.
        batch_size (int): Images per rank and iteration.
        seed (int): Seed of the permutation.
        rank (int): This rank.
        world_size (int): Number of ranks.

    Example:
        >>> len(ShardedEpochSampler(range(10), 2, seed=0, rank=1,
        ...                         world_size=2))
        4
    """

    def __init__(self, indices: Sequence[int], batch_size: int, seed: int,
                 rank: int, world_size: int) -> None:
        global_batch = batch_size * world_size
        if len(indices) < global_batch:
            raise ValueError(
                f'train_subset: {len(indices)} images, fewer than one '
                f'global batch ({batch_size} x {world_size} ranks)')
        order = torch.randperm(
            len(indices), generator=torch.Generator().manual_seed(seed))
        self.num_batches = len(indices) // global_batch
        self.indices: List[int] = []
        for b in range(self.num_batches):
            batch = order[b * global_batch:(b + 1) * global_batch]
            self.indices += [
                int(indices[int(i)]) for i in batch[rank::world_size]
            ]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_dataset(dataloader: ConfigType) -> Dataset:
    """The dataset of a dataloader config (built if it is a config)."""
    dataset = dataloader['dataset']
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    return dataset


def build_loader(dataloader: ConfigType, dataset: Dataset, sampler: Sampler,
                 seed: Optional[int]) -> DataLoader:
    """A dataloader from ``dataloader``'s settings with our own sampler.

    Args:
        dataloader (dict): Dataloader config (batch size, workers, collate
            function...); its ``dataset`` and ``sampler`` are replaced.
        dataset (Dataset): The built dataset.
        sampler (Sampler): The sampler to use.
        seed (int, optional): Seed of the workers.

    Returns:
        DataLoader: Without persistent workers (a search iterates a loader
        a few times per candidate, from the main process's state).
    """
    cfg = dict(dataloader)
    cfg.update(dataset=dataset, sampler=sampler)
    cfg.pop('persistent_workers', None)
    return Runner.build_dataloader(cfg, seed=seed)
