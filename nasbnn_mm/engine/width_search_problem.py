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

:class:`InheritLeadingChannelsHook` initialises the final training of a
found network the same way.
"""
import copy
import math
import os.path as osp
import random
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import Sampler

from nasbnn_mm.models.backbones.width_vgg import (EXPAND_RATIOS,
                                                  inherit_leading_channels,
                                                  parse_expand_ratios)
from nasbnn_mm.nas.width_counter import count_width_cost
from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils.typing_utils import ConfigType, OptConfigType
from .bn_calibration import recalibrate_bn, tensor_forward
from .search_problems import (SEARCH_PROBLEMS, SearchProblem, StridedSampler,
                              _build_dataset, _loader, count_top1)

__all__ = [
    'WidthSearchProblem', 'ShardedEpochSampler', 'InheritLeadingChannelsHook'
]

Ratios = Tuple[float, ...]
CostRange = Optional[Tuple[float, float]]
# NOTE: draws of `sample` before a cost range is declared unreachable.
_MAX_DRAWS = 1000
LR_SCHEDULES = ('cosine', 'constant')


def _layer_names(backbone: nn.Module) -> List[str]:
    names = backbone.layer_names
    return list(names() if callable(names) else names)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


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


@SEARCH_PROBLEMS.register_module()
class WidthSearchProblem(SearchProblem):
    """Per-layer expansion ratios of a width-search backbone (sec. 3.1).

    A candidate is a tuple of ratios, one per searchable layer of the
    backbone (``WidthVGGSmall``: 6, ``WidthResNet18``: 12), each in
    ``ratios``. Mutation redraws each layer's ratio with probability
    ``prob``; crossover takes each layer's ratio from either parent with
    probability 1/2. Its cost is FLOPs in M, binary MACs divided by 64
    (:func:`~nasbnn_mm.nas.width_counter.count_width_cost`, the network
    built on the ``meta`` device); the reference cost is the uniform-1x
    network's.

    The runner's model is the trained wide network (uniform 4x; the loop
    loads its checkpoint). :meth:`evaluate` builds the candidate from the
    same model config with the candidate's ``expand_ratios``, copies the
    leading channels of every tensor of the wide network
    (:func:`~nasbnn_mm.models.backbones.width_vgg.inherit_leading_channels`,
    what ``WidthVGGSmall.inherit_from`` does, over the whole classifier),
    trains it for ``train_epochs`` epochs on ``train_subset`` training
    images and returns its top-1 (%) on the evaluation split. Every
    candidate sees the same subset, the same image order and (with the
    global generators reseeded per candidate) the same augmentations, so
    its accuracy depends only on the candidate, the wide weights and
    ``seed``: the search is reproducible and resumes exactly. Under a
    launcher the ranks train one candidate together: each takes its part
    of every global batch and the gradients are averaged (BN statistics
    stay per rank, as with DDP); the evaluation split is divided across
    ranks and the counts summed.

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
            :data:`EXPAND_RATIOS`.
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
        self.model = _unwrap(runner.model)
        backbone = getattr(self.model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'expand_ratios'):
            raise TypeError(
                f'model: {type(self.model).__name__} has no width-search '
                'backbone (backbone.expand_ratios); WidthSearchProblem needs '
                'e.g. an ImageClassifier with a nasbnn_mm.WidthVGGSmall')
        self.layer_names = _layer_names(backbone)
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

        if model is None:
            cfg = getattr(runner, 'cfg', None) or {}
            if 'model' not in cfg:
                raise ValueError('model: not given and the runner config '
                                 'has no `model`')
            model = copy.deepcopy(dict(cfg['model']))
            if cfg.get('data_preprocessor') is not None:
                model.setdefault('data_preprocessor',
                                 copy.deepcopy(cfg['data_preprocessor']))
        self.model_cfg = copy.deepcopy(dict(model))
        self.optim_wrapper_cfg = copy.deepcopy(dict(optim_wrapper))
        self.train_epochs = train_epochs
        self.lr_schedule = lr_schedule
        self.input_shape = tuple(input_shape)
        self.calibrate_batches = calibrate_batches
        self.seed = seed
        self._costs: Dict[Ratios, float] = {}

        self.train_cfg = dict(train_dataloader)
        self.train_dataset = _build_dataset(train_dataloader)
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
        dataset = _build_dataset(eval_dataloader)
        if len(dataset) == 0:
            raise ValueError('eval_dataloader: the dataset is empty')
        self.eval_loader = _loader(eval_dataloader, dataset,
                                   StridedSampler(len(dataset)), seed)

    # ---------------------------------------------------------- candidates
    def canonical(self, ratios: Union[float, Sequence[float]]) -> Ratios:
        """Check ratios and return the candidate (a tuple of floats).

        Raises:
            ValueError: Naming the layer whose ratio is not allowed.
        """
        parsed = parse_expand_ratios(ratios, len(self.layer_names),
                                     self.layer_names)
        for name, ratio in zip(self.layer_names, parsed):
            if ratio not in self.ratios:
                raise ValueError(f'expand_ratios ({name}): {ratio} not in '
                                 f'the searched ratios {self.ratios}')
        return tuple(parsed)

    def uniform(self, ratio: float) -> Ratios:
        """The candidate with ``ratio`` in every layer."""
        return (float(ratio), ) * len(self.layer_names)

    def initial(self) -> List[Ratios]:
        """The uniform-1x network, the reference of the fitness."""
        return [self.uniform(1.0)] if 1.0 in self.ratios else []

    def sample(self,
               rng: random.Random,
               cost_range: CostRange = None) -> Ratios:
        """Uniform ratios per layer, redrawn until in ``cost_range``."""
        for _ in range(_MAX_DRAWS):
            candidate = tuple(
                rng.choice(self.ratios) for _ in self.layer_names)
            if cost_range is None or \
                    cost_range[0] <= self.cost(candidate) <= cost_range[1]:
                return candidate
        raise ValueError(f'cost_range: no candidate in {list(cost_range)} '
                         f'{self.cost_label} after {_MAX_DRAWS} draws')

    def mutate(self, candidate: Ratios, rng: random.Random,
               prob: float) -> Ratios:
        """Redraw each layer's ratio with probability ``prob``."""
        return tuple(
            rng.choice(self.ratios) if rng.random() < prob else r
            for r in candidate)

    def crossover(self, a: Ratios, b: Ratios, rng: random.Random) -> Ratios:
        """Each layer's ratio from ``a`` or ``b`` (probability 1/2)."""
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))

    def to_dict(self, candidate: Ratios) -> dict:
        """``{'expand_ratios': [...]}``, whole ratios written as ints."""
        return dict(expand_ratios=[
            int(r) if float(r).is_integer() else float(r) for r in candidate
        ])

    def from_dict(self, data: Union[dict, Sequence[float]]) -> Ratios:
        """Parse ``{'expand_ratios': [...]}`` or a plain list of ratios."""
        if isinstance(data, dict):
            if 'expand_ratios' not in data:
                raise ValueError(f'candidate: {data} has no '
                                 "'expand_ratios'")
            data = data['expand_ratios']
        return self.canonical(data)

    # ---------------------------------------------------------------- cost
    def model_config(self, candidate: Ratios) -> dict:
        """The model config of a candidate."""
        cfg = copy.deepcopy(self.model_cfg)
        cfg['backbone'] = dict(cfg['backbone'])
        cfg['backbone']['expand_ratios'] = list(candidate)
        return cfg

    def build(self, candidate: Ratios) -> nn.Module:
        """Build the candidate classifier (random weights, on the CPU)."""
        return MODELS.build(self.model_config(candidate))

    def cost(self, candidate: Ratios) -> float:
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
    def _train_loader(self, epoch: int, sharded: bool = True):
        rank, world_size = get_dist_info() if sharded else (0, 1)
        sampler = ShardedEpochSampler(self.subset,
                                      self.train_cfg['batch_size'],
                                      self.seed + epoch, rank, world_size)
        cfg = dict(self.train_cfg, drop_last=True)
        return _loader(cfg, self.train_dataset, sampler, self.seed + epoch)

    def inherit(self, candidate: Ratios) -> nn.Module:
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
                for p in model.parameters():
                    if p.grad is not None:
                        all_reduce(p.grad, op='mean')
                optim_wrapper.step()
                optim_wrapper.zero_grad()
                step += 1

    def count_correct(self, model: nn.Module) -> Tuple[int, int]:
        """Correct top-1 predictions and images, summed over all ranks."""
        return count_top1(model, self.eval_loader)

    def evaluate(self, candidate: Ratios) -> float:
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


@HOOKS.register_module()
class InheritLeadingChannelsHook(Hook):
    """Start training from the leading channels of a wider checkpoint.

    The final training of a found network (sec. 3.1) starts, like the
    search's candidates, from the first channels of the uniform-4x network:
    before the first iteration every tensor of the model takes the leading
    slice of the same key in ``checkpoint`` (``torch.load(weights_only=
    True)``, key ``state_dict``). A resumed run (iteration > 0) keeps its
    own weights.

    Args:
        checkpoint (str): The wide network's checkpoint.
        reset_bn_stats (bool): Reset the BN running statistics after
            inheriting (the affine parameters are kept): the wide network's
            do not fit the narrower one, and with a short schedule they
            would dominate the evaluation. Defaults to False.

    Example (config)::

        custom_hooks = [
            dict(type='nasbnn_mm.InheritLeadingChannelsHook',
                 checkpoint='work_dirs/vgg-small_4x_digits/iter_12.pth')
        ]
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str, reset_bn_stats: bool = False) -> None:
        self.checkpoint = checkpoint
        self.reset_bn_stats = reset_bn_stats

    def before_train(self, runner) -> None:
        """Load the leading channels unless the run was resumed."""
        if runner.iter > 0:
            return
        if not osp.isfile(self.checkpoint):
            raise FileNotFoundError(
                f'checkpoint {self.checkpoint!r} does not exist')
        state = torch.load(
            self.checkpoint, map_location='cpu', weights_only=True)
        state = state.get('state_dict', state)
        model = _unwrap(runner.model)
        inherit_leading_channels(model, state)
        if self.reset_bn_stats:
            for module in model.modules():
                if isinstance(module, _BatchNorm):
                    module.reset_running_stats()
        print_log(
            f'initialised from the leading channels of {self.checkpoint}',
            logger='current')
