"""FLOPs and memory of binary networks, as counted by the width search.

Convention of "Searching for Accurate Binary Neural Architectures" (Shen et
al., 2019, https://arxiv.org/abs/1909.07378), Tables 1 and 2, checked against
their numbers in ``docs/width_search.md``:

- FLOPs are multiply-accumulates of the convolution and linear layers; those
  of binary layers are divided by 64 (Bi-Real Net's convention, sec. 2):
  ``FLOPs = FLOPs_fp + BOPs / 64``. BatchNorm, activations, pooling,
  residual additions and biases are not counted.
- Memory is the size of the convolution and linear weights in bits: 32 bits
  per full-precision weight, 1 bit per binary weight. BatchNorm, biases and
  the per-layer DoReFa scales are not counted (counting BatchNorm would turn
  Table 1's 7.3M into 7.4M).

A layer is binary when its class says ``ops_kind = 'bops'`` (the project's
contract, e.g. :class:`~nasbnn_mm.models.layers.dorefa.DoReFaConv2d`); plain
``nn.Conv2d`` and ``nn.Linear`` are full precision (``'flops'``).
"""
from typing import Dict, NamedTuple, Sequence, Set

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['WidthCost', 'count_width_cost']

_BITS = {'flops': 32, 'bops': 1}


class WidthCost(NamedTuple):
    """Cost of one network under the width-search convention.

    Attributes:
        flops (float): ``fp_flops + bops / binary_divisor``, the FLOPs of
            Tables 1 and 2.
        memory_bits (int): ``32 * fp_params + binary_params``, the memory of
            Table 1.
        fp_flops (int): Multiply-accumulates of full-precision layers.
        bops (int): Multiply-accumulates of binary layers.
        fp_params (int): Weights of full-precision layers.
        binary_params (int): Weights of binary layers.
    """

    flops: float
    memory_bits: int
    fp_flops: int
    bops: int
    fp_params: int
    binary_params: int


def _macs(module: nn.Module, output: Tensor) -> int:
    """Multiply-accumulates of one call for one sample."""
    per_sample = output.numel() // output.shape[0]
    if isinstance(module, nn.Conv2d):
        kernel = module.weight.shape[1:].numel()  # C_in / groups * K * K
        return per_sample * kernel
    return per_sample * module.in_features


def count_width_cost(model: nn.Module,
                     input_shape: Sequence[int],
                     binary_divisor: int = 64) -> WidthCost:
    """Count FLOPs and memory of a network with one forward pass.

    The forward runs under ``torch.no_grad()`` in eval mode (the training
    flags are restored afterwards) on a zero input on the device of the
    model's parameters. Build the model on the ``meta`` device to count
    without allocating or computing anything, e.g. a 4x ResNet-18 at
    224x224. Every ``nn.Conv2d`` and ``nn.Linear`` run by the forward is
    counted; FLOPs per call, weights once per layer.

    Args:
        model (nn.Module): The whole network, classifier included (the
            paper's numbers include the last FC layer): a width-search
            backbone with ``num_classes > 0``, or e.g. an MMPretrain
            ``ImageClassifier``, whose default ``mode='tensor'`` runs the
            head.
        input_shape (Sequence[int]): Input shape (N, C, H, W); FLOPs are per
            sample whatever N.
        binary_divisor (int): Binary MACs per counted FLOP. Defaults to 64.

    Returns:
        WidthCost: The FLOPs, the memory in bits and their parts.

    Raises:
        ValueError: If a layer's ``ops_kind`` is neither ``'flops'`` nor
            ``'bops'``.

    Example:
        >>> from nasbnn_mm.models.backbones.width_vgg import WidthVGGSmall
        >>> with torch.device('meta'):
        ...     model = WidthVGGSmall(1.0, num_classes=10)
        >>> cost = count_width_cost(model, (1, 3, 32, 32))
        >>> cost.bops, cost.fp_flops, cost.memory_bits
        (603979776, 3620864, 7303168)
    """
    layers = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    }
    for name, module in layers.items():
        kind = getattr(module, 'ops_kind', 'flops')
        if kind not in _BITS:
            raise ValueError(f'{name}: ops_kind {kind!r} not in '
                             f'{tuple(_BITS)} (width-search convention)')

    macs: Dict[str, int] = {'flops': 0, 'bops': 0}
    ran: Set[nn.Module] = set()

    def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        macs[getattr(module, 'ops_kind', 'flops')] += _macs(module, output)
        ran.add(module)

    handles = [m.register_forward_hook(hook) for m in layers.values()]
    training = {m: m.training for m in model.modules()}
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in training.items():
            module.training = mode

    params = {'flops': 0, 'bops': 0}
    for module in ran:
        params[getattr(module, 'ops_kind', 'flops')] += module.weight.numel()
    return WidthCost(
        flops=macs['flops'] + macs['bops'] / binary_divisor,
        memory_bits=sum(_BITS[k] * n for k, n in params.items()),
        fp_flops=macs['flops'],
        bops=macs['bops'],
        fp_params=params['flops'],
        binary_params=params['bops'])
