"""Width-expansion search: per-layer ratios of a binary VGG/ResNet.

Paper: Shen et al., "Searching for Accurate Binary Neural Architectures"
(2019, https://arxiv.org/abs/1909.07378), sec. 3.1. A candidate is one
expansion ratio per searchable layer (eq. 2); it is initialised from the
leading channels of a network trained at uniform 4x width
("Initialization"), trained for a few epochs on a training subset and
evaluated on held-out images. :class:`EvolutionSearchLoop` with
``objective='fitness'`` ranks candidates by eq. (4),
``max(Acc - lambda * FLOPs / FLOPs_ref, 0)``, ``FLOPs_ref`` being the FLOPs
of the uniform-1x binary network.
"""
import copy
import math
import random
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS
from torch import nn
from torch.utils.data import DataLoader

from nasbnn_mm.nas.width_counter import count_width_cost
from nasbnn_mm.nas.width_inheritance import inherit_leading_channels
from nasbnn_mm.nas.width_space import EXPAND_RATIOS, parse_expand_ratios
from nasbnn_mm.registry import SEARCH_PROBLEMS
from nasbnn_mm.utils import all_reduce_gradients, unwrap_model
from nasbnn_mm.utils.typing_utils import ConfigType, OptConfigType
from ...bn_calibration import recalibrate_bn, tensor_forward
from ..data import (ShardedEpochSampler, StridedSampler, build_dataset,
                    build_loader)
from ..evaluation import count_top1
from .base import CostRange, SearchProblem

__all__ = ['WidthSearchProblem']

# A candidate: one ratio per searchable layer.
RatioTuple = Tuple[float, ...]
# NOTE: draws of `sample` before a cost range is declared unreachable.
_MAX_DRAWS = 1000
LR_SCHEDULES = ('cosine', 'constant')


@SEARCH_PROBLEMS.register_module()
class WidthSearchProblem(SearchProblem):
    """Per-layer expansion ratios of a width-search backbone (sec. 3.1).

    A candidate is a tuple of ratios, one per searchable layer of the
    backbone (``backbone.layer_names``; ``WidthVGGSmall``: 6,
    ``WidthResNet18``: 12), each in ``ratios``. Mutation redraws each
    layer's ratio with probability ``prob``; crossover takes each layer's
    ratio from either parent with probability 1/2. Its cost is FLOPs in M,
    binary MACs divided by 64
    (:func:`~nasbnn_mm.nas.width_counter.count_width_cost`, the network
    built on the ``meta`` device); the reference cost is the uniform-1x
    network's.

    The runner's model is the trained wide network (uniform 4x; the loop
    loads its checkpoint). :meth:`evaluate` builds the candidate from the
    same model config with the candidate's ``expand_ratios``, copies the
    leading channels of every tensor of the wide network
    (:func:`~nasbnn_mm.nas.width_inheritance.inherit_leading_channels`,
    over the whole classifier), trains it for ``train_epochs`` epochs on
    ``train_subset`` training images and returns its top-1 (%) on the
    evaluation split. Every candidate sees the same subset, the same image
    order and (with the global generators reseeded per candidate) the same
    augmentations, so its accuracy depends only on the candidate, the wide
    weights and ``seed``: the search is reproducible and resumes exactly.
    Under a launcher the ranks train one candidate together: each takes its
    part of every global batch and the gradients are averaged
    (:func:`~nasbnn_mm.utils.all_reduce_gradients`; BN statistics stay per
    rank, as with DDP); the evaluation split is divided across ranks and
    the counts summed.

    Args:
        runner (Runner): The runner; its model is the wide classifier.
        train_dataloader (dict): Dataloader config of the training data
            (``batch_size`` images per rank and iteration; its sampler is
            replaced).
        eval_dataloader (dict): Dataloader config of the held-out split
            the accuracy is measured on (its sampler is replaced).
        optim_wrapper (dict): Optimizer wrapper config of a candidate's
            training, e.g. ``dict(optimizer=dict(type='SGD', lr=0.01,
            momentum=0.9))``.
        train_epochs (int): Epochs per candidate (10 in the paper).
        train_subset (int, optional): Training images per candidate, a
            seeded random subset; None uses all. Defaults to None.
        lr_schedule (str): ``'cosine'`` (to 0 over the candidate's
            iterations) or ``'constant'``. Defaults to 'cosine'.
        model (dict, optional): Model config the candidates are built from
            (its ``backbone.expand_ratios`` is replaced). Defaults to the
            runner config's ``model`` with its ``data_preprocessor``.
        ratios (Sequence[float]): Allowed ratios. Defaults to
            :data:`~nasbnn_mm.nas.width_space.EXPAND_RATIOS`.
        input_shape (Sequence[int]): Input of the FLOPs count, (1, C, H, W).
            Defaults to ``(1, 3, 32, 32)``.
        calibrate_batches (int, optional): After training, re-estimate the
            BN statistics on this many training batches of the subset (the
            same on every rank). The paper does not; with a few iterations
            per candidate the running statistics still hold mostly the wide
            network's, which do not fit the candidate. None keeps the
            training statistics. Defaults to None.
        seed (int): Seed of the subset, the image order and the
            augmentations. Defaults to 0.

    Example (``train_cfg.problem`` of a search config)::

        problem = dict(
            type='nasbnn_mm.WidthSearchProblem',
            eval_dataloader={{_base_.search_val_dataloader}},
            optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-3)),
            train_epochs=10)
    """

    cost_key = 'flops_m'
    cost_label = 'FLOPs (M)'

    def __init__(self,
                 runner,
                 train_dataloader: ConfigType,
                 eval_dataloader: ConfigType,
                 optim_wrapper: ConfigType,
                 train_epochs: int,
                 train_subset: Optional[int] = None,
                 lr_schedule: str = 'cosine',
                 model: OptConfigType = None,
                 ratios: Sequence[float] = EXPAND_RATIOS,
                 input_shape: Sequence[int] = (1, 3, 32, 32),
                 calibrate_batches: Optional[int] = None,
                 seed: int = 0) -> None:
        if train_epochs < 1:
            raise ValueError(f'train_epochs: {train_epochs} must be >= 1')
        if calibrate_batches is not None and calibrate_batches < 1:
            raise ValueError(
                f'calibrate_batches: {calibrate_batches} must be >= 1')
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f'lr_schedule: {lr_schedule!r} not in {LR_SCHEDULES}')
        self.model = unwrap_model(runner.model)
        backbone = getattr(self.model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'expand_ratios'):
            raise TypeError(
                f'model: {type(self.model).__name__} has no width-search '
                'backbone (backbone.expand_ratios); WidthSearchProblem needs '
                'e.g. an ImageClassifier with a nasbnn_mm.WidthVGGSmall')
        self.layer_names = tuple(backbone.layer_names)
        bad = [r for r in ratios if r not in EXPAND_RATIOS]
        if not ratios or bad:
            raise ValueError(f'ratios: {list(ratios)} must be a non-empty '
                             f'subset of {EXPAND_RATIOS}')
        self.ratios = tuple(sorted(float(r) for r in set(ratios)))
        for name, wide in zip(self.layer_names, backbone.expand_ratios):
            if wide < self.ratios[-1]:
                raise ValueError(
                    f'model: {name} has ratio {wide}, narrower than the '
                    f'largest searched ratio {self.ratios[-1]}; the runner '
                    'model must be the wide (uniform 4x) network')

        self.model_cfg = self._model_config(runner, model)
        self.optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper))
        self.train_epochs = train_epochs
        self.lr_schedule = lr_schedule
        self.input_shape = tuple(input_shape)
        self.calibrate_batches = calibrate_batches
        self.seed = seed
        self._costs: Dict[RatioTuple, float] = {}

        self.train_cfg = dict(train_dataloader)
        self.train_dataset = build_dataset(train_dataloader)
        num = len(self.train_dataset)
        if train_subset is None:
            self.subset = list(range(num))
        else:
            if not 0 < train_subset <= num:
                raise ValueError(f'train_subset: {train_subset} not in '
                                 f'[1, {num}] (training images)')
            order = torch.randperm(
                num, generator=torch.Generator().manual_seed(seed))
            self.subset = sorted(order[:train_subset].tolist())
        # mmengine's hooks read ``runner.train_dataloader``.
        self.dataloader = self._train_loader(0)
        dataset = build_dataset(eval_dataloader)
        if len(dataset) == 0:
            raise ValueError('eval_dataloader: the dataset is empty')
        self.eval_loader = build_loader(eval_dataloader, dataset,
                                        StridedSampler(len(dataset)), seed)

    @staticmethod
    def _model_config(runner, model: OptConfigType) -> dict:
        """``model``, or the runner config's model with its preprocessor."""
        if model is None:
            cfg = getattr(runner, 'cfg', None) or {}
            if 'model' not in cfg:
                raise ValueError('model: not given and the runner config '
                                 'has no `model`')
            model = copy.deepcopy(dict(cfg['model']))
            if cfg.get('data_preprocessor') is not None:
                model.setdefault('data_preprocessor',
                                 copy.deepcopy(cfg['data_preprocessor']))
        return copy.deepcopy(dict(model))

    # ---------------------------------------------------------- candidates
    def canonical(self, ratios: Union[float, Sequence[float]]) -> RatioTuple:
        """Check ratios and return the candidate (a tuple of floats).

        Raises:
            ValueError: Naming the layer whose ratio is not allowed.
        """
        parsed = parse_expand_ratios(ratios, self.layer_names)
        for name, ratio in zip(self.layer_names, parsed):
            if ratio not in self.ratios:
                raise ValueError(f'expand_ratios ({name}): {ratio} not in '
                                 f'the searched ratios {self.ratios}')
        return tuple(parsed)

    def uniform(self, ratio: float) -> RatioTuple:
        """The candidate with ``ratio`` in every layer."""
        return (float(ratio), ) * len(self.layer_names)

    def initial(self) -> List[RatioTuple]:
        """The uniform-1x network, the reference of the fitness."""
        return [self.uniform(1.0)] if 1.0 in self.ratios else []

    def sample(self,
               rng: random.Random,
               cost_range: CostRange = None) -> RatioTuple:
        """Uniform ratios per layer, redrawn until in ``cost_range``."""
        for _ in range(_MAX_DRAWS):
            candidate = tuple(
                rng.choice(self.ratios) for _ in self.layer_names)
            if cost_range is None or \
                    cost_range[0] <= self.cost(candidate) <= cost_range[1]:
                return candidate
        raise ValueError(f'cost_range: no candidate in {list(cost_range)} '
                         f'{self.cost_label} after {_MAX_DRAWS} draws')

    def mutate(self, candidate: RatioTuple, rng: random.Random,
               prob: float) -> RatioTuple:
        """Redraw each layer's ratio with probability ``prob``."""
        return tuple(
            rng.choice(self.ratios) if rng.random() < prob else r
            for r in candidate)

    def crossover(self, a: RatioTuple, b: RatioTuple,
                  rng: random.Random) -> RatioTuple:
        """Each layer's ratio from ``a`` or ``b`` (probability 1/2)."""
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))

    def to_dict(self, candidate: RatioTuple) -> dict:
        """``{'expand_ratios': [...]}``, whole ratios written as ints."""
        return dict(expand_ratios=[
            int(r) if float(r).is_integer() else float(r) for r in candidate
        ])

    def from_dict(self, data: Union[dict, Sequence[float]]) -> RatioTuple:
        """Parse ``{'expand_ratios': [...]}`` or a plain list of ratios."""
        if isinstance(data, dict):
            if 'expand_ratios' not in data:
                raise ValueError(f'candidate: {data} has no '
                                 "'expand_ratios'")
            data = data['expand_ratios']
        return self.canonical(data)

    # ---------------------------------------------------------------- cost
    def model_config(self, candidate: RatioTuple) -> dict:
        """The model config of a candidate."""
        cfg = copy.deepcopy(self.model_cfg)
        cfg['backbone'] = dict(cfg['backbone'])
        cfg['backbone']['expand_ratios'] = list(candidate)
        return cfg

    def build(self, candidate: RatioTuple) -> nn.Module:
        """Build the candidate classifier (random weights, on the CPU)."""
        return MODELS.build(self.model_config(candidate))

    def cost(self, candidate: RatioTuple) -> float:
        """FLOPs in M (binary MACs / 64), counted once per candidate."""
        if candidate not in self._costs:
            # NOTE: on the meta device nothing is allocated or computed.
            with torch.device('meta'):
                model = self.build(candidate)
            self._costs[candidate] = count_width_cost(
                model, self.input_shape).flops / 1e6
        return self._costs[candidate]

    def cost_bounds(self) -> Tuple[float, float]:
        """FLOPs (M) of the narrowest and the widest candidate."""
        return (self.cost(self.uniform(self.ratios[0])),
                self.cost(self.uniform(self.ratios[-1])))

    def reference_cost(self) -> float:
        """FLOPs (M) of the uniform-1x binary network."""
        return self.cost(self.uniform(1.0))

    # ------------------------------------------------------------ evaluate
    def _train_loader(self, epoch: int, sharded: bool = True) -> DataLoader:
        rank, world_size = get_dist_info() if sharded else (0, 1)
        sampler = ShardedEpochSampler(self.subset,
                                      self.train_cfg['batch_size'],
                                      self.seed + epoch, rank, world_size)
        cfg = dict(self.train_cfg, drop_last=True)
        return build_loader(cfg, self.train_dataset, sampler,
                            self.seed + epoch)

    def inherit(self, candidate: RatioTuple) -> nn.Module:
        """The candidate with the wide network's leading channels."""
        model = self.build(candidate)
        inherit_leading_channels(model, self.model.state_dict())
        return model.to(next(self.model.parameters()).device)

    def train(self, model: nn.Module) -> None:
        """Train a candidate for ``train_epochs`` on the subset."""
        optim_wrapper = build_optim_wrapper(model, self.optim_wrapper_cfg)
        base_lrs = [g['lr'] for g in optim_wrapper.param_groups]
        loaders = [self._train_loader(e) for e in range(self.train_epochs)]
        total = sum(len(loader) for loader in loaders)
        step = 0
        model.train()
        for loader in loaders:
            for batch in loader:
                if self.lr_schedule == 'cosine':
                    scale = 0.5 * (1 + math.cos(math.pi * step / total))
                    groups = optim_wrapper.param_groups
                    for group, lr in zip(groups, base_lrs):
                        group['lr'] = lr * scale
                data = model.data_preprocessor(batch, True)
                loss, _ = model.parse_losses(model(**data, mode='loss'))
                optim_wrapper.backward(loss)
                all_reduce_gradients(model.parameters())
                optim_wrapper.step()
                optim_wrapper.zero_grad()
                step += 1

    def count_correct(self, model: nn.Module) -> Tuple[int, int]:
        """Correct top-1 predictions and images, summed over all ranks."""
        return count_top1(model, self.eval_loader)

    def evaluate(self, candidate: RatioTuple) -> float:
        """Inherit, train briefly, return top-1 (%) on the evaluation split.
        """
        # NOTE: the global generators drive the augmentations of the main
        # process; reseeding them makes every candidate's training a
        # function of the seed only, whatever was evaluated before.
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        model = self.inherit(candidate)
        self.train(model)
        if self.calibrate_batches is not None:
            recalibrate_bn(
                model,
                self._train_loader(0, sharded=False),
                tensor_forward(model),
                num_batches=self.calibrate_batches)
        correct, total = self.count_correct(model)
        return 100.0 * correct / total
