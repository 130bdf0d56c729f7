"""Validate fixed subnets of a supernet, each after BN recalibration."""
import random
from typing import Dict, List, Sequence, Tuple, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner import BaseLoop, TestLoop, ValLoop
from torch.utils.data import DataLoader

from nasbnn_mm.nas import ArchSpec, ops_bounds, sample_in_ops_range
from nasbnn_mm.registry import LOOPS
from nasbnn_mm.utils import unwrap_model
from .bn_calibration import recalibrate_bn, tensor_forward

__all__ = ['SubnetValLoop', 'SubnetTestLoop', 'middle_subnet']

SubnetType = Union[str, dict]


def middle_subnet(space,
                  non_decreasing: bool = True,
                  seed: int = 0) -> ArchSpec:
    """A fixed subnet with OPs near the middle of the space's OPs range.

    Drawn with a fixed seed among subnets within ±10% of the range's
    midpoint, so it is the same in every run.
    """
    low, high = ops_bounds(space, non_decreasing)
    mid, half = (low + high) / 2, (high - low) * 0.1
    return sample_in_ops_range(space, random.Random(seed), mid - half,
                               mid + half, non_decreasing)


class _SubnetLoopMixin:
    """Shared body of :class:`SubnetValLoop` and :class:`SubnetTestLoop`."""

    stage = 'val'

    def _init_subnets(self, subnets: Sequence[SubnetType],
                      calibrate_batches: int) -> None:
        if calibrate_batches < 1:
            raise ValueError(
                f'calibrate_batches: {calibrate_batches} must be >= 1')
        if not subnets:
            raise ValueError('subnets: give at least one subnet')
        self.subnet_cfgs = list(subnets)
        self.calibrate_batches = calibrate_batches
        self._calibration_loader = None

    def _resolve(self, model) -> List[Tuple[str, ArchSpec]]:
        named = {
            'smallest': lambda: model.smallest,
            'largest': lambda: model.largest,
            'middle': lambda: middle_subnet(model.space, model.non_decreasing),
        }
        resolved = []
        for i, cfg in enumerate(self.subnet_cfgs):
            if isinstance(cfg, str) and cfg in named:
                resolved.append((cfg, named[cfg]()))
            elif isinstance(cfg, dict) and 'arch' in cfg:
                resolved.append(
                    (cfg.get('name',
                             f'subnet{i}'), model.resolve_subnet(cfg['arch'])))
            else:
                resolved.append((f'subnet{i}', model.resolve_subnet(cfg)))
        return resolved

    def _calibration_batches(self) -> DataLoader:
        """The training dataloader (built from the config in test runs)."""
        if self._calibration_loader is None:
            # NOTE: a test-only runner never builds its train loop; its
            # train dataloader config is kept in ``_train_dataloader``.
            train_loop = self.runner._train_loop
            if isinstance(train_loop, BaseLoop):
                self._calibration_loader = train_loop.dataloader
            elif self.runner._train_dataloader is not None:
                self._calibration_loader = self.runner.build_dataloader(
                    self.runner._train_dataloader)
            else:
                raise ValueError('BN recalibration needs training data: '
                                 'the config has no train_dataloader')
        return self._calibration_loader

    def _run_subnets(self) -> Dict[str, float]:
        model = self.runner.model
        algorithm = unwrap_model(model)
        self.runner.call_hook(f'before_{self.stage}')
        self.runner.call_hook(f'before_{self.stage}_epoch')
        all_metrics: Dict[str, float] = {}
        previous = algorithm.subnet
        for name, arch in self._resolve(algorithm):
            algorithm.set_subnet(arch)
            recalibrate_bn(algorithm, self._calibration_batches(),
                           tensor_forward(algorithm), self.calibrate_batches)
            model.eval()
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch)
            metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
            for key, value in metrics.items():
                all_metrics[f'{name}/{key}'] = value
            all_metrics[f'{name}/ops_m'] = round(algorithm.subnet_ops(arch), 4)
        algorithm.subnet = previous
        self.runner.call_hook(f'after_{self.stage}_epoch', metrics=all_metrics)
        self.runner.call_hook(f'after_{self.stage}')
        return all_metrics


@LOOPS.register_module()
class SubnetValLoop(_SubnetLoopMixin, ValLoop):
    """Validate the supernet through fixed subnets.

    For each subnet (``'smallest'``, ``'largest'``, ``'middle'`` or any
    architecture: preset name, spec file, spec dict, or
    ``dict(name=..., arch=...)``): set it, recalibrate BN on
    ``calibrate_batches`` training batches (:func:`recalibrate_bn`), run the
    validation set and log the metrics as ``<name>/<metric>`` plus
    ``<name>/ops_m``.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): Validation data.
        evaluator (Evaluator | dict | list): Metrics.
        subnets (Sequence): Subnets to evaluate. Defaults to
            ('smallest', 'middle', 'largest').
        calibrate_batches (int): Training batches for BN statistics.
            Defaults to 10.
        fp16 (bool): Autocast. Defaults to False.
    """

    stage = 'val'

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, dict],
                 evaluator: Union[Evaluator, dict, list],
                 subnets: Sequence[SubnetType] = ('smallest', 'middle',
                                                  'largest'),
                 calibrate_batches: int = 10,
                 fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_subnets(subnets, calibrate_batches)

    @torch.no_grad()
    def run(self) -> Dict[str, float]:
        return self._run_subnets()


@LOOPS.register_module()
class SubnetTestLoop(_SubnetLoopMixin, TestLoop):
    """:class:`SubnetValLoop` for ``test_cfg`` (``tools/test.py``)."""

    stage = 'test'

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, dict],
                 evaluator: Union[Evaluator, dict, list],
                 subnets: Sequence[SubnetType] = ('largest', ),
                 calibrate_batches: int = 10,
                 fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._init_subnets(subnets, calibrate_batches)

    @torch.no_grad()
    def run(self) -> Dict[str, float]:
        return self._run_subnets()
