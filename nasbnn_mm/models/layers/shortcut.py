"""The Bi-Real shortcut of NAS-BNN's separable blocks."""
import torch
import torch.nn.functional as F
from torch import Tensor

from nasbnn_mm.ops.training import (avg_pool2x2_backward, avg_pool2x2_forward,
                                    training_ext)

__all__ = ['bireal_pool', 'bireal_shortcut']


class Pool2x2Function(torch.autograd.Function):
    """``F.avg_pool2d(x, 2)`` of a contiguous CPU float32 map of even size
    by the extension (the same values, bit for bit)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.size = x.shape[2:]
        return avg_pool2x2_forward(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return avg_pool2x2_backward(grad.contiguous(), *ctx.size)


def bireal_pool(x: Tensor) -> Tensor:
    """2×2 average pooling (stride 2) of the stride-2 shortcut, any size.

    The strided k×k conv beside it (padding ``k // 2``) outputs
    ``ceil(H / 2)`` rows, so the pooling rounds up too (``ceil_mode``): on an
    odd side the last window holds the one remaining row (column) and is
    divided by the number of pixels it holds (PyTorch's rule for a window
    that passes the input's end when there is no padding; spelled out with
    ``count_include_pad=False``), i.e. the mean of the pixels present. On an
    even side nothing changes: every window is whole and divided by 4, as
    in the official code, which floors (it only ever ran 224×224 inputs).
    On even sides of a contiguous CPU float32 map the extension's
    :class:`Pool2x2Function` computes it (the same values).

    Args:
        x (Tensor): (N, C, H, W).

    Returns:
        Tensor: (N, C, ceil(H / 2), ceil(W / 2)).
    """
    if (x.dim() == 4 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0
            and x.is_contiguous() and training_ext(x) is not None):
        return Pool2x2Function.apply(x)
    return F.avg_pool2d(
        x, 2, stride=2, ceil_mode=True, count_include_pad=False)


def bireal_shortcut(x: Tensor, out_channels: int, stride: int) -> Tensor:
    """Match ``x`` to a block output of ``out_channels`` and ``stride``.

    Stride 2 is a 2×2 average pooling (stride 2, :func:`bireal_pool`); a
    wider output tiles the input channels (``[x, x, ...]`` cut to
    ``out_channels``) as in the paper's Fig. 1(b); a narrower one keeps the
    first ``out_channels`` (Fig. 1(c), the information loss the
    Non-Decreasing constraint avoids; only subnets of the constraint-off
    ablation have it).

    Args:
        x (Tensor): Block input (N, C_in, H, W).
        out_channels (int): Output width C_out.
        stride (int): 1 or 2.

    Returns:
        Tensor: (N, C_out, ceil(H / stride), ceil(W / stride)); ``x`` itself
        when nothing changes.
    """
    if stride == 2:
        x = bireal_pool(x)
    elif stride != 1:
        raise ValueError(f'stride {stride} not in (1, 2)')
    in_channels = x.shape[1]
    if out_channels == in_channels:
        return x
    if out_channels < in_channels:
        return x[:, :out_channels]
    repeats = -(-out_channels // in_channels)
    return x.repeat(1, repeats, 1, 1)[:, :out_channels]
