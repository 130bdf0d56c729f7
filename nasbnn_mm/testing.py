"""Tiny search spaces, fake inputs and helpers shared by the tests (like
``mmdet.testing``) and the benchmarks: spaces small enough for a supernet
step in milliseconds on a CPU, with every kind of choice (depth, width,
kernel, groups) present; :func:`load_tool` to import a ``tools/`` script;
:func:`trained_like` to give an untrained model trained-like statistics."""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Optional, Tuple

import torch
import torch.nn as nn

__all__ = [
    'TINY_SPACE', 'TINY_ARCH', 'ONE_STAGE_SPACE', 'LabelSample',
    'toy_train_dataloader', 'load_tool', 'trained_like'
]

# Two stages, 16x16 inputs, 4 classes; the second stage has stride 2 and
# grouped convs, so widths, groups and kernel transforms all vary.
TINY_SPACE = dict(
    input_size=16,
    in_channels=3,
    num_classes=4,
    stem=dict(channels=[8, 16], kernel_size=[3], groups=[1], stride=2),
    stages=[
        dict(
            depth=[1, 2],
            channels=[16, 24],
            kernel_size=[3, 5],
            groups=[1, 2],
            stride=1),
        dict(
            depth=[1, 2],
            channels=[24, 32],
            kernel_size=[3, 5],
            groups=[2, 4],
            stride=2),
    ])
# A subnet of TINY_SPACE that is neither the smallest nor the largest.
TINY_ARCH = dict(
    stem='c8_k3_g1', stages=[['c16_k5_g2', 'c24_k3_g1'], ['c32_k5_g4']])
# 2 x 2 x 3 x 2 x 2 = 48 subnets (fewer under the Non-Decreasing
# constraint): a few generations of a search run in seconds.
ONE_STAGE_SPACE = dict(
    TINY_SPACE,
    stages=[
        dict(
            depth=[1, 2],
            channels=[16, 24, 32],
            kernel_size=[3, 5],
            groups=[1, 2],
            stride=2),
    ])


class LabelSample:
    """The part of an MMPretrain ``DataSample`` the supernet reads.

    Args:
        label (int): The class index; ``gt_label`` is a (1, ) long tensor.
    """

    def __init__(self, label: int) -> None:
        self.gt_label = torch.tensor([label])


def toy_train_dataloader(dataset: list, batch_size: int = 4) -> dict:
    """An MMEngine ``train_dataloader`` config over an in-memory list of
    sample dicts: shuffled by ``DefaultSampler``, default collate, no
    workers."""
    return dict(
        dataset=dataset,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
        batch_size=batch_size,
        num_workers=0)


def load_tool(*parts: str) -> ModuleType:
    """Import a script of the source checkout's ``tools/`` folder.

    Args:
        *parts (str): Its path under ``tools/``, e.g. ``'deploy',
            'pack_subnet.py'``.

    Returns:
        ModuleType: The script as a module (``.main`` runs it), named
        ``tools.<parts>`` so that two tools never share a module name.
    """
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    path = osp.join(repo, 'tools', *parts)
    name = 'tools.' + '.'.join(parts)[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def trained_like(model: nn.Module,
                 seed: int,
                 input_shape: Optional[Tuple[int, ...]] = (2, 3, 32, 32)):
    """Give a float model non-trivial BN statistics and shifts, as after
    training, and (with ``input_shape``) initialise its LSQ steps on a
    random batch of that shape; eval mode.

    NOTE: default-initialised nets (identity BN, zero shifts) have exact
    sign ties (e.g. 0 + float noise) that float32 and float64 runs of the
    same float model already break differently.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(t, low, high):
        t.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            uniform(module.running_mean, -1, 1)
            uniform(module.running_var, 0.5, 2)
            uniform(module.weight, 0.5, 1.5)
            uniform(module.bias, -0.5, 0.5)
    for name, param in model.named_parameters():
        if 'bias' in name and '.bn' not in name:
            uniform(param, -0.3, 0.3)
    model.eval()
    if input_shape is not None:
        model(torch.randn(*input_shape, generator=gen))
    return model
