"""Slices of a shared supernet weight whose gradient is added in place.

Every subnet of a sandwich step convolves with a slice of the shared weight
``W`` (C_out, C_in, k, k). Plain autograd turns each slice's gradient into a
full-size tensor (zeros, then the slice copied in) and adds it to
``W.grad``: three passes over the whole weight per subnet and layer, the
most of it zeros. :func:`slice_weight` adds the slice's gradient straight
into the matching part of ``W.grad`` instead: one pass over the slice. The
sum is the same, in the same order (``W.grad`` starts from zeros, then
each backward adds its part), so training is unchanged.

Because the gradient bypasses autograd's accumulation of ``W``, hooks on
``W`` (e.g. those of ``DistributedDataParallel``) do not see it. It is
therefore used only inside :func:`sliced_grad_accumulation`, which the
sandwich trainer opens around its backward passes (its data-parallel
wrapper all-reduces ``.grad`` after them).
"""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['slice_weight', 'sliced_grad_accumulation']


class _SliceWeightFunction(torch.autograd.Function):
    """``weight[:out_channels]`` then a column prefix or gather; backward
    adds into ``weight.grad`` and returns no gradient to autograd."""

    @staticmethod
    def forward(ctx, weight: Tensor, out_channels: int, columns: int,
                index: Optional[Tensor]) -> Tensor:
        ctx.weight = weight
        ctx.out_channels = out_channels
        ctx.columns = columns
        ctx.index = index
        rows = weight[:out_channels]
        if index is None:
            return rows[:, :columns]
        return rows.gather(1, index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight = ctx.weight
        if weight.grad is None:
            if ctx.index is None and grad.shape == weight.shape:
                weight.grad = grad.clone(memory_format=torch.contiguous_format)
                return None, None, None, None
            weight.grad = torch.zeros_like(weight)
        rows = weight.grad[:ctx.out_channels]
        if ctx.index is None:
            rows[:, :ctx.columns] += grad
        else:
            rows.scatter_add_(1, ctx.index, grad)
        return None, None, None, None


def slice_weight(weight: Tensor,
                 out_channels: int,
                 columns: int,
                 index: Optional[Tensor] = None,
                 in_place_grad: bool = False) -> Tensor:
    """The rows ``[:out_channels]`` and input columns of a shared weight.

    Args:
        weight (Tensor): (C_out, C_in, ...), usually a leaf parameter.
        out_channels (int): Rows kept.
        columns (int): Column prefix kept when ``index`` is None.
        index (Tensor, optional): Gather index along dim 1, shaped like the
            result (out_channels, columns, ...).
        in_place_grad (bool): Add the gradient into ``weight.grad`` directly
            (see the module docstring); only for a leaf ``weight`` that
            requires grad. Defaults to False.

    Returns:
        Tensor: (out_channels, columns, ...), a view when ``index`` is None.
    """
    if (in_place_grad and weight.requires_grad and weight.is_leaf
            and torch.is_grad_enabled()):
        return _SliceWeightFunction.apply(weight, out_channels, columns, index)
    rows = weight[:out_channels]
    return rows[:, :columns] if index is None else rows.gather(1, index)


@contextmanager
def sliced_grad_accumulation(module: nn.Module) -> Iterator[None]:
    """Let every submodule with ``in_place_grad`` add slice gradients into
    its shared weights' ``.grad`` directly (see :func:`slice_weight`).

    Backward passes must run inside the context; the previous values come
    back on exit, also on error.

    Args:
        module (nn.Module): Model.
    """
    saved = [(m, m.in_place_grad) for m in module.modules()
             if hasattr(m, 'in_place_grad')]
    for m, _ in saved:
        m.in_place_grad = True
    try:
        yield
    finally:
        for m, value in saved:
            m.in_place_grad = value
