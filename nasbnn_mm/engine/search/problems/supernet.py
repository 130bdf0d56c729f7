"""Subnets of a NAS-BNN supernet with inherited weights.

Paper: NAS-BNN: Neural Architecture Search for Binary Neural Networks,
https://arxiv.org/abs/2408.15484 (sec. 4.1.2, evolutionary search).
"""
import itertools
import random
from typing import List, Optional, Tuple

import numpy as np
import torch

from nasbnn_mm.models.layers import binarization
from nasbnn_mm.nas import (ArchSpec, RandomGenerator, crossover, mutate,
                           ops_bounds, parse_arch, sample_in_ops_range,
                           sample_largest, sample_random, sample_smallest)
from nasbnn_mm.registry import SEARCH_PROBLEMS
from nasbnn_mm.utils import unwrap_model
from nasbnn_mm.utils.typing_utils import ConfigType
from ...bn_calibration import recalibrate_bn, tensor_forward
from ..data import StridedSampler, build_dataset, build_loader
from ..evaluation import count_top1
from .base import CostRange, SearchProblem

__all__ = ['SupernetSearchProblem']


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
        self.model = unwrap_model(runner.model)
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
        dataset = build_dataset(train_dataloader)
        generator = torch.Generator().manual_seed(seed)
        self.dataloader = build_loader(
            train_dataloader, dataset,
            torch.utils.data.RandomSampler(dataset, generator=generator), seed)
        dataset = build_dataset(eval_dataloader)
        if len(dataset) == 0:
            raise ValueError('eval_dataloader: the dataset is empty')
        self.eval_loader = build_loader(eval_dataloader, dataset,
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

    @torch.no_grad()
    def count_correct(self, candidate: ArchSpec) -> Tuple[int, int]:
        """Correct top-1 predictions and images, summed over all ranks."""
        model = self.model
        model.set_subnet(candidate)
        with binarization(model, weights=True, activations=True):
            recalibrate_bn(model, self.calibration_batches(),
                           tensor_forward(model))
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
