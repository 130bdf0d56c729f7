"""Binary activations of ReActNet, as adopted by NAS-BNN.

NAS-BNN (https://arxiv.org/abs/2408.15484, sec. 4.1.2) binarizes activations
with the method of ReActNet (https://arxiv.org/abs/2003.03488): a sign whose
backward pass is the derivative of the piecewise-polynomial ApproxSign of
Bi-Real Net, preceded by a learnable per-channel shift (``RSign``); the
full-precision non-linearity is ``RPReLU`` (shift, PReLU, shift).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from nasbnn_mm.ops.training import (rprelu_backward, rprelu_forward,
                                    rprelu_rsign_backward,
                                    rprelu_rsign_forward, rsign_backward,
                                    rsign_forward, training_ext)
from .dynamic_op import DynamicMixin

__all__ = [
    'sign_forward', 'ApproxSignFunction', 'binary_sign', 'RSignFunction',
    'RPReLUFunction', 'RPReLURSignFunction', 'RSign', 'RPReLU',
    'residual_rprelu_rsign'
]


def sign_forward(x: Tensor) -> Tensor:
    """Eq. (1) without gradient: ``+1`` where ``x >= 0``, else ``-1``.

    Args:
        x (Tensor): Any shape.

    Returns:
        Tensor: Same shape and dtype, values in ``{-1, +1}``.
    """
    # NOTE: copysign is one fast pass (where/masked_fill are several times
    # slower on CPU); ``x + 0.`` turns -0. into +0., so both zeros give +1.
    return torch.copysign(x.new_ones(()), x + 0.)


class ApproxSignFunction(torch.autograd.Function):
    """Sign with the ApproxSign gradient.

    Forward is eq. (1) of NAS-BNN, ``+1`` where ``x >= 0`` (so ``sign(0)`` is
    ``+1``, unlike :func:`torch.sign`) and ``-1`` elsewhere. Backward is the
    derivative of ApproxSign, ``2 - 2|x|`` for ``|x| < 1`` and ``0`` else.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return sign_forward(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        # max(0, 2 - 2|x|) = 2 * max(0, 1 - |x|)
        return grad_output * torch.relu_(1 - x.abs()).mul_(2)


def binary_sign(x: Tensor) -> Tensor:
    """Binarize activations to ``{-1, +1}`` with the ApproxSign gradient.

    Args:
        x (Tensor): Any shape.

    Returns:
        Tensor: Same shape and dtype as ``x``, values in ``{-1, +1}``.
    """
    return ApproxSignFunction.apply(x)


class RSignFunction(torch.autograd.Function):
    """``sign(x + b)`` with the ApproxSign gradient, in one extension call
    each way (CPU float32, (N, C, H, W)): the forward equals
    ``binary_sign(x + b)`` bit for bit, the bias gradient is summed per
    channel in the backward's pass."""

    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, bias)
        return rsign_forward(x, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, Tensor]:
        x, bias = ctx.saved_tensors
        return rsign_backward(grad.contiguous(), x, bias)


class RPReLUFunction(torch.autograd.Function):
    """``PReLU(x + b_in) + b_out`` in one extension call each way (CPU
    float32, (N, C, H, W)); the forward equals the module's operations
    (the same float operations; a zero may come out +0 where they give
    -0)."""

    @staticmethod
    def forward(ctx, x: Tensor, bias_in: Tensor, weight: Tensor,
                bias_out: Tensor) -> Tensor:
        ctx.save_for_backward(x, bias_in, weight)
        return rprelu_forward(x, bias_in, weight, bias_out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, ...]:
        x, bias_in, weight = ctx.saved_tensors
        return tuple(rprelu_backward(grad.contiguous(), x, bias_in, weight))


def _use_extension(x: Tensor) -> bool:
    """Whether the activations run in the extension: a CPU float32
    (N, C, H, W) map and the extension built."""
    return x.dim() == 4 and training_ext(x) is not None


class RSign(nn.Module):
    """ReActNet sign: ``sign(x + b)`` with a learnable per-channel shift.

    The shift is added (``x + b``; ReActNet writes ``x - alpha``, the same
    thing with ``b = -alpha``), initialised to zero.

    Switch: ``binary`` (bool). ``True`` binarizes. ``False`` (full-precision
    activations, used by the FWFA teacher and ablations) returns ``x + b``:
    the learned shift is kept, so both modes see the same pre-activation and
    only the sign is skipped.

    Args:
        num_channels (int): Number of channels C.

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W).

    Example:
        >>> m = RSign(8)
        >>> m(torch.randn(2, 8, 4, 4)).unique().tolist()
        [-1.0, 1.0]
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.binary = True

    def _shift(self, x: Tensor, bias: Tensor) -> Tensor:
        if self.binary and _use_extension(x):
            return RSignFunction.apply(x.contiguous(), bias.contiguous())
        x = x + bias.view(1, -1, 1, 1)
        return binary_sign(x) if self.binary else x

    def forward(self, x: Tensor) -> Tensor:
        """Shift then binarize (or only shift when ``binary`` is False).

        Args:
            x (Tensor): (N, C, H, W).

        Returns:
            Tensor: (N, C, H, W).
        """
        return self._shift(x, self.bias)

    def extra_repr(self) -> str:
        return f'{self.num_channels}, binary={self.binary}'


class RPReLU(nn.Module):
    """ReActNet RPReLU: ``PReLU(x + b_in) + b_out`` per channel.

    Shifts are added and initialised to zero; the PReLU slopes start at 0.25
    like :class:`torch.nn.PReLU`.

    Args:
        num_channels (int): Number of channels C.

    Shape:
        - Input: (N, C, H, W).
        - Output: (N, C, H, W).

    Example:
        >>> m = RPReLU(8)
        >>> m(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.bias_in = nn.Parameter(torch.zeros(num_channels))
        self.weight = nn.Parameter(torch.full((num_channels, ), 0.25))
        self.bias_out = nn.Parameter(torch.zeros(num_channels))

    @staticmethod
    def _rprelu(x: Tensor, bias_in: Tensor, weight: Tensor,
                bias_out: Tensor) -> Tensor:
        if _use_extension(x):
            return RPReLUFunction.apply(x.contiguous(), bias_in.contiguous(),
                                        weight.contiguous(),
                                        bias_out.contiguous())
        x = F.prelu(x + bias_in.view(1, -1, 1, 1), weight)
        return x + bias_out.view(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply shift, PReLU, shift.

        Args:
            x (Tensor): (N, C, H, W).

        Returns:
            Tensor: (N, C, H, W).
        """
        return self._rprelu(x, self.bias_in, self.weight, self.bias_out)

    def extra_repr(self) -> str:
        return f'{self.num_channels}'


class RPReLURSignFunction(torch.autograd.Function):
    """``out = RPReLU(y + r)`` and ``RSign(out)`` in one extension call each
    way (CPU float32, (N, C, H, W)); outputs and input gradients equal those
    of the separate modules bit for bit, parameter gradients too (the same
    per-channel summation)."""

    @staticmethod
    def forward(ctx, y: Tensor, r: Tensor, bias_in: Tensor, weight: Tensor,
                bias_out: Tensor, sign_bias: Tensor) -> Tuple[Tensor, Tensor]:
        params = (bias_in, weight, bias_out, sign_bias)
        ctx.save_for_backward(y, r, *params)
        out, sign = rprelu_rsign_forward(y, r, *params)
        return out, sign

    @staticmethod
    def backward(ctx, grad_out: Tensor,
                 grad_sign: Tensor) -> Tuple[Tensor, ...]:
        y, r, *params = ctx.saved_tensors
        grad, *param_grads = rprelu_rsign_backward(grad_out.contiguous(),
                                                   grad_sign.contiguous(), y,
                                                   r, *params)
        return (grad, grad, *param_grads)


def _takes(module: nn.Module, channels: int) -> bool:
    """Whether ``module`` runs on ``channels`` channels: all of them, or
    (a dynamic module) its first ``channels``."""
    if isinstance(module, DynamicMixin):
        return 0 < channels <= module.num_channels
    return channels == module.num_channels


def residual_rprelu_rsign(y: Tensor, r: Tensor, act: RPReLU,
                          sign: RSign) -> Tuple[Tensor, Tensor]:
    """``out = act(y + r)`` and ``sign(out)``: a block's residual add,
    RPReLU and the next convolution's RSign.

    One :class:`RPReLURSignFunction` on CPU float32 maps of one shape with a
    binarizing ``sign`` (the modules' first C parameters, as the dynamic
    modules use them); the modules themselves elsewhere.

    Args:
        y (Tensor): (N, C, H, W), e.g. a BN output.
        r (Tensor): (N, C, H, W), the shortcut.
        act (RPReLU): The activation (or a :class:`DynamicRPReLU`).
        sign (RSign): The binarization (or a :class:`DynamicRSign`).

    Returns:
        tuple[Tensor, Tensor]: ``out`` and its signs, (N, C, H, W) each.
    """
    c = y.shape[1] if y.dim() == 4 else -1
    if (not sign.binary or not _use_extension(y) or y.shape != r.shape
            or r.dtype != y.dtype or not _takes(act, c)
            or not _takes(sign, c)):
        out = act(y + r)  # and the modules' own errors, if any
        return out, sign(out)
    params = (act.bias_in[:c], act.weight[:c], act.bias_out[:c], sign.bias[:c])
    return RPReLURSignFunction.apply(y.contiguous(), r.contiguous(),
                                     *(p.contiguous() for p in params))
