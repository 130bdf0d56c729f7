"""Float convolutions of the binary layers with bfloat16 operands (opt-in).

Inside :func:`conv_operand_dtype` ``(torch.bfloat16)`` the convolutions that
a binary layer runs in floating point take bfloat16 copies of their
operands and return float32: the forward of a full-precision-weight conv
(the Bi-Teacher's) and the backward of every binary conv (data and weight
gradients, also those of :func:`~.xnor_conv.xnor_conv2d`, whose forward
stays on the exact popcount kernels). The products are exact where an
operand is +-1 (an RSign output, ``sign(W)``); the other operand (a
full-precision weight, ``alpha_o``, an incoming gradient) is rounded to 8
significant bits, the sums run in float32 inside the convolution and its
result is rounded to bfloat16 once. On a CPU with bfloat16 dot products
(AVX512-BF16) such a convolution ran twice as fast as in float32
(``docs/benchmarks.md``); CPUs without them may emulate it, slower (not
measured here). Outside the context (the default) nothing changes:
``F.conv2d`` and its float32 gradients.
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function
from torch.nn.modules.utils import _pair

__all__ = [
    'CONV_OPERAND_DTYPES', 'conv_operand_dtype', 'active_operand_dtype',
    'float_conv2d', 'conv2d_backward'
]

# the names a config may give (``SandwichSupernet(conv_operand_dtype=...)``)
CONV_OPERAND_DTYPES = dict(float32=None, bfloat16=torch.bfloat16)

_dtype: Optional[torch.dtype] = None


@contextmanager
def conv_operand_dtype(dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Run the binary layers' float convolutions with ``dtype`` operands
    inside a block (None: as given, float32); not thread-safe.

    Example:
        >>> with conv_operand_dtype(torch.bfloat16):
        ...     model(inputs).sum().backward()
    """
    global _dtype
    previous, _dtype = _dtype, dtype
    try:
        yield
    finally:
        _dtype = previous


def active_operand_dtype(x: Tensor) -> Optional[torch.dtype]:
    """The operand dtype set by :func:`conv_operand_dtype` when it applies
    to ``x`` (a float32 tensor), else None."""
    return _dtype if x.dtype == torch.float32 else None


def conv2d_backward(
        grad: Tensor, x: Tensor, weight: Tensor,
        bias_sizes: Optional[List[int]], stride, padding, dilation,
        groups: int, needs: Sequence[bool],
        dtype: Optional[torch.dtype]) -> Tuple[Optional[Tensor], ...]:
    """``(grad_x, grad_weight, grad_bias)`` of ``F.conv2d(x, weight, ...)``
    for the output gradient ``grad``, with ``dtype`` operands and float32
    results (None: the operands as given); a gradient not in ``needs`` is
    None."""
    if dtype is not None:
        grad, x, weight = grad.to(dtype), x.to(dtype), weight.to(dtype)
    grads = torch.ops.aten.convolution_backward(grad, x, weight, bias_sizes,
                                                _pair(stride), _pair(padding),
                                                _pair(dilation), False, [0, 0],
                                                groups, list(needs))
    if dtype is None:
        return grads
    return tuple(None if g is None else g.float() for g in grads)


class ReducedOperandConvFunction(Function):
    """``F.conv2d`` on ``dtype`` copies of the operands, float32 out, and
    the backward with ``dtype`` operands too."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], stride,
                padding, dilation, groups: int, dtype: torch.dtype) -> Tensor:
        x, weight = x.to(dtype), weight.to(dtype)
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation, groups, dtype)
        ctx.bias_sizes = None if bias is None else [bias.shape[0]]
        out = F.conv2d(x, weight, None, stride, padding, dilation,
                       groups).float()
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1))

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, dtype = ctx.conv
        grads = conv2d_backward(grad, x, weight, ctx.bias_sizes, stride,
                                padding, dilation, groups,
                                ctx.needs_input_grad[:3], dtype)
        return (*grads, None, None, None, None, None)


def float_conv2d(x: Tensor,
                 weight: Tensor,
                 bias: Optional[Tensor] = None,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1) -> Tensor:
    """``F.conv2d``; inside :func:`conv_operand_dtype` with bfloat16 operands
    (module docstring).

    Args:
        x (Tensor): (N, C_in, H, W).
        weight (Tensor): (C_out, C_in / groups, K, K).
        bias (Tensor, optional): (C_out, ).

    Returns:
        Tensor: (N, C_out, H_out, W_out) in ``x``'s dtype.
    """
    dtype = active_operand_dtype(x)
    if dtype is None:
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return ReducedOperandConvFunction.apply(x, weight, bias, stride, padding,
                                            dilation, groups, dtype)
