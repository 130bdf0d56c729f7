"""Float convolutions of the binary layers: table lookup for a +-1
operand, bfloat16 operands (opt-in).

On the avx512 kernel path these convolutions run by table lookup, one
vector permute and add for four products, zero padding skipped, float32
sums as a convolution's in another order (``ops/csrc/sign_*_op.cpp``):
the forward of a +-1 input (an RSign output) with a float weight (the
Bi-Teacher's convolutions, :func:`~nasbnn_mm.ops.training.
sign_input_conv2d`), the weight gradient of a +-1 input (also the
students' popcount convolutions, :func:`~nasbnn_mm.ops.training.
sign_conv_weight_grad`) and the input gradient of a +-alpha_o weight (the
students', :func:`~nasbnn_mm.ops.training.sign_conv_input_grad`). They
apply to square kernels larger than 1x1 and to 1x1 ones from
``LOOKUP_MIN_1X1_CHANNELS`` input channels per group, the input gradient
from ``LOOKUP_MIN_INPUT_GRAD_POSITIONS`` output positions (smaller ones
ran no faster than oneDNN, ``docs/benchmarks.md``); where the operand is
not +-1 they fall back to ``F.conv2d`` and ``aten.convolution_backward``.

Inside :func:`conv_operand_dtype` ``(torch.bfloat16)`` the convolutions that
a binary layer runs in floating point take bfloat16 copies of their
operands and return float32: the forward of a full-precision-weight conv
(the Bi-Teacher's) and the backward of every binary conv (data and weight
gradients, also those of :func:`~.xnor_conv.xnor_conv2d`, whose forward
stays on the exact popcount kernels; no table lookups then). The products
are exact where an operand is +-1 (an RSign output, ``sign(W)``); the other
operand (a full-precision weight, ``alpha_o``, an incoming gradient) is
rounded to 8 significant bits, the sums run in float32 inside the
convolution and its result is rounded to bfloat16 once. On a CPU with
bfloat16 dot products (AVX512-BF16) such a convolution ran twice as fast as
in float32 (``docs/benchmarks.md``); CPUs without them may emulate it,
slower (not measured here). Outside the context (the default) the
operands stay float32.
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function
from torch.nn.modules.utils import _pair

from nasbnn_mm.ops.binary_conv import kernel_path
from nasbnn_mm.ops.training import (sign_conv_input_grad,
                                    sign_conv_weight_grad, sign_input_conv2d,
                                    training_ext)

__all__ = [
    'CONV_OPERAND_DTYPES', 'conv_operand_dtype', 'active_operand_dtype',
    'float_conv2d', 'conv2d_backward', 'lookup_applies'
]

# 1x1 kernels take the lookups from this many input channels per group on;
# the input gradient from this many output positions (docs/benchmarks.md:
# smaller ones ran no faster than oneDNN here)
LOOKUP_MIN_1X1_CHANNELS = dict(forward=256, weight_grad=128, input_grad=128)
LOOKUP_MIN_INPUT_GRAD_POSITIONS = 16

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


def lookup_applies(x: Tensor,
                   weight: Tensor,
                   stride,
                   padding,
                   dilation,
                   use: str = 'weight_grad') -> bool:
    """Whether this float32 convolution's ``use`` (``'forward'``,
    ``'weight_grad'`` or ``'input_grad'``) takes the table lookup (which
    still falls back where ``x``, or for ``'input_grad'`` a weight row, is
    not +-1 / +-alpha_o)."""
    (kh, kw), step, pad = weight.shape[2:], _pair(stride), _pair(padding)
    return (training_ext(x) is not None and x.dim() == 4 and kh == kw
            and step[0] == step[1] and pad[0] == pad[1]
            and _pair(dilation) == (1, 1) and kernel_path() == 'avx512'
            and (kh > 1 or weight.shape[1] >= LOOKUP_MIN_1X1_CHANNELS[use]))


def _lookup_grads(grad: Tensor, x: Tensor, weight: Tensor, stride, padding,
                  dilation, groups: int, needs: Sequence[bool],
                  input_signs: bool,
                  weight_signs: bool) -> List[Optional[Tensor]]:
    """``[grad_x, grad_weight]`` by table lookup where that applies; None
    elsewhere and where the +-1 operand is not."""
    step, pad = _pair(stride)[0], _pair(padding)[0]
    grad_x = grad_weight = None
    if (needs[0] and weight_signs and grad.shape[2] * grad.shape[3]
            >= LOOKUP_MIN_INPUT_GRAD_POSITIONS and lookup_applies(
                x, weight, stride, padding, dilation, 'input_grad')):
        grad_x = sign_conv_input_grad(grad, weight, x.shape[2], x.shape[3],
                                      step, pad, groups)
    if needs[1] and input_signs and lookup_applies(x, weight, stride, padding,
                                                   dilation, 'weight_grad'):
        grad_weight = sign_conv_weight_grad(grad, x, weight.shape[2], step,
                                            pad, groups)
    return [grad_x, grad_weight]


def conv2d_backward(
        grad: Tensor,
        x: Tensor,
        weight: Tensor,
        bias_sizes: Optional[List[int]],
        stride,
        padding,
        dilation,
        groups: int,
        needs: Sequence[bool],
        dtype: Optional[torch.dtype],
        input_signs: bool = True,
        weight_signs: bool = False) -> Tuple[Optional[Tensor], ...]:
    """``(grad_x, grad_weight, grad_bias)`` of ``F.conv2d(x, weight, ...)``
    for the output gradient ``grad``, with ``dtype`` operands and float32
    results; a gradient not in ``needs`` is None. With ``dtype`` None the
    weight gradient of a +-1 ``x`` (``input_signs`` False: ``x`` was already
    found not to be), and (``weight_signs``: each weight row is meant to be
    +-alpha_o) the input gradient, run by table lookup where that
    applies."""
    looked_up = [None, None, None]
    if dtype is None:
        looked_up[:2] = _lookup_grads(grad, x, weight, stride, padding,
                                      dilation, groups, needs, input_signs,
                                      weight_signs)
    rest = [need and g is None for need, g in zip(needs, looked_up)]
    if not any(rest):
        return tuple(looked_up)
    if dtype is not None:
        grad, x, weight = grad.to(dtype), x.to(dtype), weight.to(dtype)
    grads = torch.ops.aten.convolution_backward(grad, x, weight, bias_sizes,
                                                _pair(stride), _pair(padding),
                                                _pair(dilation), False, [0, 0],
                                                groups, rest)
    if dtype is not None:
        grads = tuple(None if g is None else g.float() for g in grads)
    return tuple(g if g is not None else other
                 for g, other in zip(looked_up, grads))


class OperandConvFunction(Function):
    """``F.conv2d`` on ``dtype`` copies of the operands (None: as given, by
    table lookup where that applies), float32 out, and
    :func:`conv2d_backward` with ``dtype`` operands (no second lookup
    attempt in the backward when the forward found ``x`` not +-1)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], stride,
                padding, dilation, groups: int,
                dtype: Optional[torch.dtype]) -> Tensor:
        out, input_signs = None, True
        if dtype is not None:
            x, weight = x.to(dtype), weight.to(dtype)
        elif lookup_applies(x, weight, stride, padding, dilation, 'forward'):
            out = sign_input_conv2d(x, weight,
                                    _pair(stride)[0],
                                    _pair(padding)[0], groups)
            input_signs = out is not None
        ctx.save_for_backward(x, weight)
        ctx.conv = dict(
            bias_sizes=None if bias is None else [bias.shape[0]],
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            dtype=dtype,
            input_signs=input_signs)
        if out is None:
            out = F.conv2d(x, weight, None, stride, padding, dilation,
                           groups).float()
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1))

    @staticmethod
    def backward(ctx, grad: Tensor):
        grads = conv2d_backward(
            grad,
            *ctx.saved_tensors,
            needs=ctx.needs_input_grad[:3],
            **ctx.conv)
        return (*grads, None, None, None, None, None)


def float_conv2d(x: Tensor,
                 weight: Tensor,
                 bias: Optional[Tensor] = None,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1) -> Tensor:
    """``F.conv2d``, it and its weight gradient by table lookup where that
    applies (module docstring); inside :func:`conv_operand_dtype` with
    bfloat16 operands.

    Args:
        x (Tensor): (N, C_in, H, W).
        weight (Tensor): (C_out, C_in / groups, K, K).
        bias (Tensor, optional): (C_out, ).

    Returns:
        Tensor: (N, C_out, H_out, W_out) in ``x``'s dtype.
    """
    dtype = active_operand_dtype(x)
    lookup = (
        dtype is None and weight.requires_grad and torch.is_grad_enabled()
        and lookup_applies(x, weight, stride, padding, dilation))
    if dtype is None and not lookup:
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return OperandConvFunction.apply(x, weight, bias, stride, padding,
                                     dilation, groups, dtype)
