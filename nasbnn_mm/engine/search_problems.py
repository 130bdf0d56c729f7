"""Search problems: what :class:`EvolutionSearchLoop` searches over.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (sec. 4.1.2, evolutionary search).

The loop only knows candidates as hashable values. A :class:`SearchProblem`
says how to draw, mutate and cross them, what they cost and how accurate
they are. :class:`SupernetSearchProblem` is the NAS-BNN one: subnets
(:class:`~nasbnn_mm.nas.ArchSpec`) of a :class:`SandwichSupernet` with
inherited weights, OPs in M as the cost, top-1 on a held-out split after BN
recalibration as the accuracy. Another problem (e.g. per-layer width
ratios of a DoReFa VGG/ResNet, each candidate trained briefly) plugs in by
subclassing :class:`SearchProblem` and registering into
:data:`SEARCH_PROBLEMS`.
"""
import itertools
import random
from typing import Hashable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.model import is_model_wrapper
from mmengine.registry import DATASETS, Registry
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Sampler

from nasbnn_mm.models.layers import binarization
from nasbnn_mm.nas import (ArchSpec, RandomGenerator, crossover, mutate,
                           ops_bounds, parse_arch, sample_in_ops_range,
                           sample_largest, sample_random, sample_smallest)
from nasbnn_mm.utils.typing_utils import ConfigType
from .bn_calibration import recalibrate_bn

__all__ = [
    'SEARCH_PROBLEMS', 'SearchProblem', 'SupernetSearchProblem',
    'strided_indices', 'StridedSampler', 'count_top1'
]

# NOTE: a registry of its own (no parent), so a config can name a problem
# as ``type='SupernetSearchProblem'`` or ``'nasbnn_mm.SupernetSearchProblem'``
# whatever the config's default scope.
SEARCH_PROBLEMS = Registry(
    'search problem', scope='nasbnn_mm', locations=['nasbnn_mm.engine'])

Candidate = Hashable
CostRange = Optional[Tuple[float, float]]


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


class SearchProblem:
    """What an evolutionary search searches over (interface).

    Candidates are hashable (they key the cache of evaluated candidates)
    and are written to JSON through :meth:`to_dict`/:meth:`from_dict`.
    Every method that draws takes the search's generator and must draw
    from nothing else, so that a seed fixes the search. :meth:`evaluate`
    must return the same value on every rank.
    """

    #: Key of the cost in ``pareto.json`` records.
    cost_key = 'cost'
    #: Axis label of the cost in plots.
    cost_label = 'cost'
    #: The training dataloader, if the problem has one (mmengine's hooks
    #: read ``runner.train_dataloader``).
    dataloader: Optional[DataLoader] = None

    def cost_bounds(self) -> Tuple[float, float]:
        """Least and most cost of any candidate."""
        raise NotImplementedError

    def initial(self) -> List[Candidate]:
        """Candidates every initial population starts with (may be none)."""
        return []

    def sample(self,
               rng: random.Random,
               cost_range: CostRange = None) -> Candidate:
        """Draw a random candidate, within ``cost_range`` if given."""
        raise NotImplementedError

    def mutate(self, candidate: Candidate, rng: random.Random,
               prob: float) -> Candidate:
        """Return a mutant: each choice redrawn with probability ``prob``."""
        raise NotImplementedError

    def crossover(self, a: Candidate, b: Candidate,
                  rng: random.Random) -> Candidate:
        """Return a child mixing the choices of ``a`` and ``b``."""
        raise NotImplementedError

    def cost(self, candidate: Candidate) -> float:
        """Cost of a candidate (e.g. OPs in M)."""
        raise NotImplementedError

    def reference_cost(self) -> float:
        """``FLOPs_ref`` of the single-objective fitness."""
        raise NotImplementedError

    def evaluate(self, candidate: Candidate) -> float:
        """Top-1 accuracy in percent, identical on every rank."""
        raise NotImplementedError

    def to_dict(self, candidate: Candidate) -> dict:
        """A JSON-serializable form of a candidate."""
        raise NotImplementedError

    def from_dict(self, data: dict) -> Candidate:
        """Inverse of :meth:`to_dict`."""
        raise NotImplementedError


def _build_dataset(dataloader: ConfigType):
    dataset = dataloader['dataset']
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    return dataset


def _loader(dataloader: ConfigType, dataset, sampler: Sampler,
            seed: Optional[int]) -> DataLoader:
    cfg = dict(dataloader)
    cfg.update(dataset=dataset, sampler=sampler)
    cfg.pop('persistent_workers', None)
    return Runner.build_dataloader(cfg, seed=seed)


@SEARCH_PROBLEMS.register_module()
class SupernetSearchProblem(SearchProblem):
    """Subnets of a NAS-BNN supernet with inherited weights (sec. 4.1.2).

    A candidate is an :class:`~nasbnn_mm.nas.ArchSpec`; its cost is its
    OPs in M (FLOPs + Int8OPs/8 + BOPs/64). Sampling, mutation and
    crossover keep the supernet's Non-Decreasing setting
    (:mod:`nasbnn_mm.nas.sampler`).

    :meth:`evaluate` sets the subnet with binary weights and activations,
    recalibrates BN on ``calibrate_batches`` training batches and counts
    correct top-1 predictions on the evaluation split. The calibration
    batches are drawn once (seeded, not sharded, the same on every rank)
    and kept in memory, so every candidate is calibrated on the same images
    and the result does not depend on the number of ranks or on what was
    evaluated before (which makes resuming exact). The evaluation split is
    divided across ranks by :class:`StridedSampler` and the counts are
    summed, so no image is counted twice.

    Args:
        runner (Runner): The runner; its model is a
            :class:`SandwichSupernet` (maybe wrapped).
        train_dataloader (dict): Dataloader config of the training data
            (for BN calibration; its sampler is replaced by a seeded
            shuffle that is the same on every rank).
        eval_dataloader (dict): Dataloader config of the held-out split
            the accuracy is measured on (its sampler is replaced).
        calibrate_batches (int): Training batches for the BN statistics.
            Defaults to 10.
        seed (int): Seed of the calibration batches' order and transforms.
            Defaults to 0.

    Example (``train_cfg.problem`` of a search config)::

        problem = dict(
            type='nasbnn_mm.SupernetSearchProblem',
            eval_dataloader={{_base_.search_val_dataloader}},
            calibrate_batches=10)
    """

    cost_key = 'ops_m'
    cost_label = 'OPs (M)'

    def __init__(self,
                 runner,
                 train_dataloader: ConfigType,
                 eval_dataloader: ConfigType,
                 calibrate_batches: int = 10,
                 seed: int = 0) -> None:
        if calibrate_batches < 1:
            raise ValueError(
                f'calibrate_batches: {calibrate_batches} must be >= 1')
        model = runner.model
        self.model = model.module if is_model_wrapper(model) else model
        for attr in ('space', 'non_decreasing', 'set_subnet', 'subnet_ops'):
            if not hasattr(self.model, attr):
                raise TypeError(
                    f'model: {type(self.model).__name__} has no {attr!r}; '
                    'SupernetSearchProblem needs a SandwichSupernet')
        self.space = self.model.space
        self.non_decreasing = self.model.non_decreasing
        self.calibrate_batches = calibrate_batches
        self.seed = seed
        self._calibration: Optional[List] = None
        dataset = _build_dataset(train_dataloader)
        generator = torch.Generator().manual_seed(seed)
        self.dataloader = _loader(
            train_dataloader, dataset,
            torch.utils.data.RandomSampler(dataset, generator=generator), seed)
        dataset = _build_dataset(eval_dataloader)
        if len(dataset) == 0:
            raise ValueError('eval_dataloader: the dataset is empty')
        self.eval_loader = _loader(eval_dataloader, dataset,
                                   StridedSampler(len(dataset)), seed)

    def calibration_batches(self) -> List:
        """The BN calibration batches (drawn on first use)."""
        if self._calibration is None:
            # NOTE: the sampler's generator restarts, and random transforms
            # of the main process (num_workers=0) draw from the global
            # generators: seed them all, so the batches depend on the seed
            # only.
            self.dataloader.sampler.generator.manual_seed(self.seed)
            random.seed(self.seed)
            np.random.seed(self.seed)
            torch.manual_seed(self.seed)
            self._calibration = list(
                itertools.islice(self.dataloader, self.calibrate_batches))
            if not self._calibration:
                raise ValueError('train_dataloader: no batch to calibrate '
                                 'BN with')
        return self._calibration

    def cost_bounds(self) -> Tuple[float, float]:
        """Least and most OPs (M) of the space (:func:`ops_bounds`)."""
        return ops_bounds(self.space, self.non_decreasing)

    def initial(self) -> List[ArchSpec]:
        """The smallest and the largest subnet."""
        return [
            sample_smallest(self.space, self.non_decreasing),
            sample_largest(self.space, self.non_decreasing)
        ]

    def sample(self,
               rng: RandomGenerator,
               cost_range: CostRange = None) -> ArchSpec:
        """Draw a subnet, with OPs in ``cost_range`` if given."""
        if cost_range is None:
            return sample_random(self.space, rng, self.non_decreasing)
        return sample_in_ops_range(self.space, rng, cost_range[0],
                                   cost_range[1], self.non_decreasing)

    def mutate(self, candidate: ArchSpec, rng: RandomGenerator,
               prob: float) -> ArchSpec:
        """:func:`~nasbnn_mm.nas.mutate` in this space."""
        return mutate(candidate, self.space, prob, rng, self.non_decreasing)

    def crossover(self, a: ArchSpec, b: ArchSpec,
                  rng: RandomGenerator) -> ArchSpec:
        """:func:`~nasbnn_mm.nas.crossover` in this space."""
        return crossover(a, b, self.space, rng, self.non_decreasing)

    def cost(self, candidate: ArchSpec) -> float:
        """OPs in M."""
        return self.model.subnet_ops(candidate)

    def reference_cost(self) -> float:
        """OPs (M) of the largest subnet."""
        return self.cost(sample_largest(self.space, self.non_decreasing))

    def _inputs(self, batch) -> dict:
        return self.model.data_preprocessor(batch, False)

    @torch.no_grad()
    def count_correct(self, candidate: ArchSpec) -> Tuple[int, int]:
        """Correct top-1 predictions and images, summed over all ranks."""
        model = self.model
        model.set_subnet(candidate)
        with binarization(model, weights=True, activations=True):
            recalibrate_bn(
                model, self.calibration_batches(), lambda batch: model(
                    self._inputs(batch)['inputs'], mode='tensor'))
            return count_top1(model, self.eval_loader)

    def evaluate(self, candidate: ArchSpec) -> float:
        """Top-1 accuracy (%) on the evaluation split."""
        correct, total = self.count_correct(candidate)
        return 100.0 * correct / total

    def to_dict(self, candidate: ArchSpec) -> dict:
        """``{'stem': token, 'stages': [[token, ...], ...]}``."""
        return candidate.to_dict()

    def from_dict(self, data: dict) -> ArchSpec:
        """Parse a spec dict."""
        return parse_arch(data)


@torch.no_grad()
def count_top1(model, loader: DataLoader) -> Tuple[int, int]:
    """Correct top-1 predictions and images of ``loader``, summed over ranks.

    Args:
        model (BaseModel): A classifier with a ``data_preprocessor`` and
            ``mode='tensor'`` logits (N, num_classes); put in eval mode.
        loader (DataLoader): This rank's share of the evaluation split.

    Returns:
        tuple[int, int]: ``(correct, images)`` over all ranks.
    """
    model.eval()
    correct, total = 0, 0
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        logits = model(data['inputs'], mode='tensor')
        labels = _labels(data['data_samples']).to(logits.device)
        correct += int((logits.argmax(dim=1) == labels).sum())
        total += labels.numel()
    counts = torch.tensor([correct, total], dtype=torch.int64)
    all_reduce(counts, op='sum')
    return int(counts[0]), int(counts[1])


def _labels(data_samples: Sequence) -> torch.Tensor:
    """One class index per sample, from MMPretrain-style ``gt_label``."""
    labels = torch.cat([s.gt_label.reshape(-1) for s in data_samples])
    if labels.numel() != len(data_samples):
        raise ValueError('data_samples: top-1 needs one gt_label per image, '
                         f'got {labels.numel()} for {len(data_samples)}')
    return labels
