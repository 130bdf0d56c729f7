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
from typing import Iterator, List, NamedTuple, Optional

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['ColumnCycle', 'slice_weight', 'sliced_grad_accumulation']


class ColumnCycle(NamedTuple):
    """Row block ``b`` (``block_rows`` rows) keeps column block ``b %
    blocks`` (the ``columns`` of :func:`slice_weight` wide): the 'cyclic'
    group slicing of a grouped convolution."""
    block_rows: int
    blocks: int


def _cycle_views(t: Tensor, out_channels: int, columns: int,
                 cycle: ColumnCycle) -> List[Tensor]:
    """Strided views of ``t[:out_channels]`` (C_out, C_in, ...) that hold
    the cycle's entries: (whole cycles, blocks, block_rows, columns, ...)
    and, when the row blocks end within a cycle, (rest, block_rows,
    columns, ...). Row-major over the views, they are the sliced weight."""
    row, col, *rest = t.stride()
    tail, tail_strides = list(t.shape[2:]), list(rest)
    rows, blocks = cycle.block_rows, cycle.blocks
    cycles, partial = divmod(out_channels // rows, blocks)
    step = rows * row + columns * col  # next row block, next column block
    views = [
        t.as_strided([cycles, blocks, rows, columns] + tail,
                     [blocks * rows * row, step, row, col] + tail_strides,
                     t.storage_offset())
    ]
    if partial:
        views.append(
            t.as_strided([partial, rows, columns] + tail,
                         [step, row, col] + tail_strides,
                         t.storage_offset() + cycles * blocks * rows * row))
    return views


def _gather_cycle(weight: Tensor, out_channels: int, columns: int,
                  cycle: ColumnCycle) -> Tensor:
    """The cycle's entries of ``weight`` as one (out_channels, columns,
    ...) tensor: one strided copy per view (differentiable)."""
    parts = [
        v.reshape(-1, columns, *weight.shape[2:])
        for v in _cycle_views(weight, out_channels, columns, cycle)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class _SliceWeightFunction(torch.autograd.Function):
    """``weight[:out_channels]`` then a column prefix or a
    :class:`ColumnCycle`; backward adds into ``weight.grad`` and returns no
    gradient to autograd."""

    @staticmethod
    def forward(ctx, weight: Tensor, out_channels: int, columns: int,
                cycle: Optional[ColumnCycle]) -> Tensor:
        ctx.weight = weight
        ctx.out_channels = out_channels
        ctx.columns = columns
        ctx.cycle = cycle
        if cycle is None:
            return weight[:out_channels, :columns]
        return _gather_cycle(weight, out_channels, columns, cycle)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, cycle = ctx.weight, ctx.cycle
        if weight.grad is None:
            if cycle is None and grad.shape == weight.shape:
                weight.grad = grad.clone(memory_format=torch.contiguous_format)
                return None, None, None, None
            weight.grad = torch.zeros_like(weight)
        if cycle is None:
            weight.grad[:ctx.out_channels, :ctx.columns] += grad
            return None, None, None, None
        start = 0
        for view in _cycle_views(weight.grad, ctx.out_channels, ctx.columns,
                                 cycle):
            rows = view.shape[:-weight.dim() + 1].numel()
            view += grad[start:start + rows].reshape(view.shape)
            start += rows
        return None, None, None, None


def slice_weight(weight: Tensor,
                 out_channels: int,
                 columns: int,
                 cycle: Optional[ColumnCycle] = None,
                 in_place_grad: bool = False) -> Tensor:
    """The rows ``[:out_channels]`` and input columns of a shared weight.

    Args:
        weight (Tensor): (C_out, C_in, ...), usually a leaf parameter.
        out_channels (int): Rows kept; a multiple of ``cycle.block_rows``.
        columns (int): Columns kept per row: the prefix ``[:columns]``, or
            with ``cycle`` the column block of the row's block.
        cycle (ColumnCycle, optional): Which column block each row block
            keeps (``cycle.blocks * columns <= C_in``). Defaults to None
            (the prefix).
        in_place_grad (bool): Add the gradient into ``weight.grad`` directly
            (see the module docstring); only for a leaf ``weight`` that
            requires grad. Defaults to False.

    Returns:
        Tensor: (out_channels, columns, ...), a view when ``cycle`` is None,
        else a copy made by strided reads (no index tensor).
    """
    if (in_place_grad and weight.requires_grad and weight.is_leaf
            and torch.is_grad_enabled()):
        return _SliceWeightFunction.apply(weight, out_channels, columns, cycle)
    if cycle is None:
        return weight[:out_channels, :columns]
    return _gather_cycle(weight, out_channels, columns, cycle)


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
