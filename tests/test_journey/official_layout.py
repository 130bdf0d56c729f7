"""Synthetic state dicts in the layout of the official NAS-BNN supernet.

Key names and shapes follow the official ``models/superbnn.py`` and
``models/dynamic_operations.py`` (github.com/VDIGPKU/NAS-BNN), written
here from their module layout (not copied): ``features.<stage>.<block>``
with the stem as stage 0; per binary conv a ``weight`` of the largest
setting, a ``scaling_factor`` buffer, ``matrix_<K>to<k>`` kernel
transformations and one ``fp2bin_<K>`` for the largest kernel ``K > 1``;
``fc``; the ``biggest_cand``/``smallest_cand`` buffers; DDP's ``module.``
prefix.
"""
from typing import Dict, Tuple

import torch
from torch import Tensor

from nasbnn_mm.nas import SearchSpace

Shape = Tuple[int, ...]


def _bn(prefix: str, channels: int) -> Dict[str, Shape]:
    return {
        f'{prefix}.bn.{name}': (channels, )
        for name in ('weight', 'bias', 'running_mean', 'running_var')
    } | {
        f'{prefix}.bn.num_batches_tracked': ()
    }


def _conv(prefix: str, cout: int, cin: int, kernels, groups) -> dict:
    k = max(kernels)
    shapes = {
        f'{prefix}.weight': (cout, cin // min(groups), k, k),
        f'{prefix}.scaling_factor': (cout, 1, 1, 1),
    }
    descending = sorted(kernels, reverse=True)
    for big, small in zip(descending, descending[1:]):
        shapes[f'{prefix}.matrix_{big}to{small}'] = (small**2, small**2)
    if k > 1:
        shapes[f'{prefix}.fp2bin_{k}'] = (k * k, k * k)
    return shapes


def official_shapes(space: SearchSpace) -> Dict[str, Shape]:
    """Keys and shapes of the official SuperBNN of ``space``."""
    stem = space.stem
    c0 = max(stem.channels)
    k0 = max(stem.kernel_size)
    p = 'features.0.0'
    shapes = {
        f'{p}.conv.weight': (c0, space.in_channels, k0, k0),
        f'{p}.conv.w_scale': (c0, ),
        f'{p}.conv.w_init_state': (1, ),
        f'{p}.move1.bias': (1, c0, 1, 1),
        f'{p}.relu.prelu.weight': (c0, ),
        f'{p}.move2.bias': (1, c0, 1, 1),
    }
    shapes.update(_bn(f'{p}.bn', c0))
    cin = c0
    rows = 1
    for i, stage in enumerate(space.stages, 1):
        cout = max(stage.channels)
        for j in range(max(stage.depth)):
            p = f'features.{i}.{j}'
            shapes.update(
                _conv(f'{p}.binary_conv', cin, cin, stage.kernel_size,
                      stage.groups))
            shapes.update(_conv(f'{p}.binary_conv1x1', cout, cin, [1], [1]))
            for name, c in (('move11', cin), ('move12', cin), ('move13', cin),
                            ('move21', cin), ('move22', cout), ('move23',
                                                                cout)):
                shapes[f'{p}.{name}.bias'] = (1, c, 1, 1)
            shapes[f'{p}.prelu1.prelu.weight'] = (cin, )
            shapes[f'{p}.prelu2.prelu.weight'] = (cout, )
            shapes.update(_bn(f'{p}.bn1', cin))
            shapes.update(_bn(f'{p}.bn2', cout))
            cin = cout
            rows += 1
    shapes['fc.weight'] = (space.num_classes, cin)
    shapes['fc.bias'] = (space.num_classes, )
    # one row per block: (stage, block, channels, kernel, groups1, groups2)
    shapes['biggest_cand'] = (rows, 6)
    shapes['smallest_cand'] = (rows, 6)
    return shapes


def official_state_dict(space: SearchSpace,
                        seed: int = 0) -> Dict[str, Tensor]:
    """Trained-like synthetic tensors for :func:`official_shapes`, keyed
    as a DistributedDataParallel model saves them (``module.``)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(space).items():
        if key.endswith('num_batches_tracked'):
            value = torch.tensor(100)
        elif key.endswith('w_init_state'):
            value = torch.ones(1)
        elif key.endswith(('running_var', 'w_scale')):
            value = torch.rand(shape, generator=gen) * 0.05 + 0.02
        elif key.endswith(('fp2bin_3', 'fp2bin_5', 'fp2bin_7')) or \
                '.matrix_' in key:
            n = shape[0]
            value = torch.eye(n) + 0.05 * torch.randn(n, n, generator=gen)
        elif key.endswith('_cand'):
            value = torch.zeros(shape, dtype=torch.long)
        elif key.endswith('bn.weight') or key.endswith('prelu.weight'):
            value = 0.25 + 0.5 * torch.rand(shape, generator=gen)
        else:
            value = 0.1 * torch.randn(shape, generator=gen)
        state['module.' + key] = value
    return state
