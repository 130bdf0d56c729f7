"""Channel-wise weight normalization and binarization in one pass per row.

The extension's ``weight_norm_forward`` / ``weight_norm_backward`` compute
what ``NormalizedWeightFunction`` (``models/layers/binary_conv.py``) does
with PyTorch operations, one output channel at a time on torch's threads,
so a channel's values stay in L1 across the passes (mean, variance,
``mean |W_n|``, the output; in the backward the clipped gradient's mean and
dot product with ``W_n``, then the gradient) instead of ~14 passes over the
whole weight in memory. Sums run in 16 interleaved partial sums, so the
results differ from PyTorch's reductions in the last bits only.
"""
from types import ModuleType
from typing import List, Optional

import torch
from torch import Tensor

from .binary_conv import load_ext

__all__ = ['weight_norm_ext', 'weight_norm_forward', 'weight_norm_backward']

_ext_missing = False


def weight_norm_ext(weight: Tensor) -> Optional[ModuleType]:
    """The extension when it runs the fused path for ``weight``: a CPU
    float32 tensor and the extension built; else None (the caller then
    uses PyTorch operations, e.g. on CUDA)."""
    global _ext_missing
    if (_ext_missing or weight.device.type != 'cpu'
            or weight.dtype != torch.float32):
        return None
    try:
        return load_ext()
    except ImportError:
        _ext_missing = True
        return None


def weight_norm_forward(flat: Tensor, official: bool, eps: float,
                        binary: bool) -> List[Tensor]:
    """Eq. (6) per row of ``flat`` (C, n), then (``binary``) ``alpha *
    sign``.

    Args:
        flat (Tensor): (C, n) CPU float32, rows contiguous (any row stride).
        official (bool): ``(W - mean) / std`` with the unbiased std (the
            official code) instead of ``(W - mean) / sqrt(var + eps)``.
        eps (float): Added to the biased variance (not ``official``).
        binary (bool): Return ``alpha * sign(W_n)``, ``alpha = mean |W_n|``.

    Returns:
        list[Tensor]: ``[out (C, n), mean (C, ), norm (C, ), alpha (C, )]``;
        ``norm`` is ``1 / sqrt(var + eps)`` or (``official``) the std,
        ``alpha`` is 1 unless ``binary``.
    """
    return load_ext().weight_norm_forward(flat, official, eps, binary)


def weight_norm_backward(grad: Tensor, flat: Tensor, stats: List[Tensor],
                         official: bool, binary: bool) -> Tensor:
    """Gradient w.r.t. ``flat`` of :func:`weight_norm_forward`.

    Args:
        grad (Tensor): (C, n) gradient of the output, rows contiguous.
        flat (Tensor): The forward's input.
        stats (list[Tensor]): The forward's ``[mean, norm, alpha]``.
        official (bool): As in the forward.
        binary (bool): As in the forward; the gradient passes where
            ``|W_n| <= 1`` (straight-through), scaled by ``alpha``.

    Returns:
        Tensor: (C, n).
    """
    mean, norm, alpha = stats
    return load_ext().weight_norm_backward(grad, flat, mean, norm, alpha,
                                           official, binary)
