"""Binary convolutions on the XNOR-popcount kernels during training.

``F.conv2d(x, W)`` with ``x`` in {-1, +1} and every output channel of
``W`` in {-alpha_o, +alpha_o} is ``alpha_o`` times an integer count, which
the bit-packed kernels of :mod:`nasbnn_mm.ops` compute exactly, several
times faster than a float convolution (the students of the sandwich step:
``docs/benchmarks.md``). :func:`xnor_conv2d` packs both operands, checks
that they are such values (the packing pass reports it) and runs the
kernels; the backward is the float convolution's
(:func:`~.conv_operands.conv2d_backward` on the saved ``x`` and ``W``: by
table lookup on the avx512 path, else ``aten.convolution_backward``; with
bfloat16 operands inside :func:`~.conv_operands.conv_operand_dtype`), so
the gradients are those of ``F.conv2d`` to float rounding. Anything else
(CUDA, other dtypes, dilation, values that are not +-1 / +-alpha, the
extension not built or :func:`~nasbnn_mm.ops.training.training_kernels`
off) runs :func:`~.conv_operands.float_conv2d` (``F.conv2d``).
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.autograd import Function

from nasbnn_mm.ops.binary_conv import binary_conv2d, block_weight
from nasbnn_mm.ops.training import nchw_from_nhwc, pack_signs, training_ext
from .conv_operands import active_operand_dtype, conv2d_backward, float_conv2d

__all__ = ['xnor_conv2d']

IntPair = Union[int, Tuple[int, int]]


class XnorConvFunction(Function):
    """``alpha_o * popcount`` forward of packed operands, the float
    convolution's backward."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                packed_x: Tensor, packed_weight: Tensor, alpha: Tensor,
                stride: int, padding: int, groups: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conv = dict(
            bias_sizes=None if bias is None else [bias.shape[0]],
            stride=stride,
            padding=padding,
            dilation=1,
            groups=groups,
            dtype=active_operand_dtype(x),
            weight_signs=True)
        if bias is not None:
            bias = bias.detach().contiguous()
        out = binary_conv2d(
            packed_x,
            block_weight(packed_weight, groups),
            x.shape[1],
            weight.shape[0],
            stride,
            padding,
            scale=alpha,
            bias=bias)
        return nchw_from_nhwc(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grads = conv2d_backward(
            grad,
            *ctx.saved_tensors,
            needs=ctx.needs_input_grad[:3],
            **ctx.conv)
        return (*grads, None, None, None, None, None, None)


def _square(value: IntPair) -> Optional[int]:
    """``value`` as one int when both sides are equal, else None."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(
            value[0], int) and value[0] == value[1]:
        return value[0]
    return None


def _packed_operands(x: Tensor, weight: Tensor,
                     groups: int) -> Optional[Tuple[Tensor, Tensor, Tensor]]:
    """``(packed_x, packed_weight, alpha)`` when ``x`` is +-1 and each
    weight row +-alpha_o, else None."""
    if (x.dim() != 4 or weight.dim() != 4 or weight.dtype != torch.float32
            or weight.device.type != 'cpu'
            or weight.shape[2] != weight.shape[3] or x.numel() == 0
            or weight.numel() == 0):
        return None
    packed_weight, alpha, uniform = pack_signs(weight.detach().contiguous(), 1)
    if not uniform:
        return None
    packed_x, magnitude, uniform = pack_signs(x.detach().contiguous(), groups)
    if not uniform or not bool((magnitude == 1).all()):
        return None
    return packed_x, packed_weight, alpha


def xnor_conv2d(x: Tensor,
                weight: Tensor,
                bias: Optional[Tensor] = None,
                stride: IntPair = 1,
                padding: IntPair = 0,
                dilation: IntPair = 1,
                groups: int = 1) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation, groups)``,
    on the XNOR-popcount kernels where that is exact (module docstring).

    Args:
        x (Tensor): (N, C_in, H, W), e.g. an RSign output.
        weight (Tensor): (C_out, C_in / groups, K, K), e.g. ``alpha *
            sign(W)``.
        bias (Tensor, optional): (C_out, ) added to the output.

    Returns:
        Tensor: (N, C_out, H_out, W_out); through the kernels ``alpha_o *
        count`` (one rounding) where ``F.conv2d`` sums ``+-alpha_o``
        products, so the two differ in the last bits.
    """
    step, pad = _square(stride), _square(padding)
    operands = None
    if (training_ext(x) is not None and _square(dilation) == 1
            and step is not None and pad is not None):
        operands = _packed_operands(x, weight, groups)
    if operands is None:
        return float_conv2d(x, weight, bias, stride, padding, dilation, groups)
    return XnorConvFunction.apply(x, weight, bias, *operands, step, pad,
                                  groups)
