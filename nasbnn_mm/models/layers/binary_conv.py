"""Weight binarization and the binary convolution of NAS-BNN.

NAS-BNN (https://arxiv.org/abs/2408.15484) binarizes weights as ReActNet
does (https://arxiv.org/abs/2003.03488): ``alpha * sign(W)`` with a
per-output-channel scale ``alpha = mean |W|`` (detached) and a clipped
straight-through gradient. Before that the shared weight goes through the
Bi-Transformation (sec. 3.3.2, binary weights only) and the channel-wise
weight normalization of eq. (6), sec. 3.3.3:

    W (-> Bi-Transformation) -> normalization -> alpha * sign   (binary)
    W                        -> normalization                   (FP)
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import Tensor

from nasbnn_mm.ops.training import (training_ext, weight_norm_backward,
                                    weight_norm_forward)
from nasbnn_mm.registry import MODELS
from .activations import RSign, sign_forward
from .bi_transformation import BiTransformation
from .xnor_conv import xnor_conv2d

__all__ = [
    'SignSTEFunction', 'sign_ste', 'NormalizedWeightFunction',
    'normalize_weight', 'check_weight_norm', 'binarize_weight',
    'binary_conv_weight', 'BinaryConv2d'
]

WEIGHT_NORM_EPS = 1e-5  # eq. (6)
# True is eq. (6) ('paper'); 'official' the official code's variant
WEIGHT_NORM_CHOICES = (True, False, 'paper', 'official')


class SignSTEFunction(torch.autograd.Function):
    """Sign with the clipped straight-through gradient.

    Forward: ``+1`` where ``x >= 0`` and ``-1`` elsewhere (eq. 1). Backward:
    the gradient passes unchanged where ``|x| <= 1`` and is zero elsewhere.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return sign_forward(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        return grad_output * (x.abs() <= 1)


def sign_ste(x: Tensor) -> Tensor:
    """Binarize to ``{-1, +1}`` with the clipped straight-through gradient.

    Args:
        x (Tensor): Any shape.

    Returns:
        Tensor: Same shape as ``x``.
    """
    return SignSTEFunction.apply(x)


class NormalizedWeightFunction(torch.autograd.Function):
    """Eq. (6), then (``binary``) ``alpha * sign``, with one fused backward.

    Forward computes exactly what :func:`normalize_weight` and
    :func:`binarize_weight` compose (same operations, same values). The
    backward is their composed gradient in closed form, over ``W`` flattened
    per output channel (n values each, ``W_n`` the normalized weight, ``g``
    the incoming gradient):

    - binary: ``g_n = g * 1{|W_n| <= 1}`` (straight-through), scaled by the
      detached ``alpha``; full precision: ``g_n = g``;
    - 'paper' (``r = 1 / sqrt(var + eps)``):
      ``dW = r * (g_n - mean(g_n) - W_n * mean(g_n * W_n))``;
    - 'official' (unbiased ``std``):
      ``dW = (g_n - mean(g_n) - W_n * sum(g_n * W_n) / (n - 1)) / std``.

    On CPU float32 weights both directions run in the extension
    (:mod:`nasbnn_mm.ops.training`: one output channel at a time, in L1,
    saving the input and per-channel scalars); elsewhere (CUDA, other
    dtypes, extension not built) as PyTorch operations that save only
    ``W_n`` and per-channel scalars. The supernet runs it on every binary
    weight of four subnets per step.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, style: str, eps: float,
                binary: bool) -> Tensor:
        flat = weight.reshape(weight.shape[0], -1)
        ctx.binary = binary
        ctx.official = style == 'official'
        ctx.shape = weight.shape
        ctx.fused = training_ext(weight) is not None
        if ctx.fused:
            if flat.stride(1) != 1:
                flat = flat.contiguous()
            out, *stats = weight_norm_forward(flat, ctx.official, eps, binary)
            ctx.save_for_backward(flat, *stats)
            return out.view(weight.shape)
        n = flat.shape[1]
        # NOTE: the variance in two passes (mean, then the norm of the
        # centred rows): two fast reductions, where torch.var_mean and
        # std_mean run a Welford loop ~20x slower on CPU at these shapes.
        centered = flat - flat.mean(dim=1, keepdim=True)
        squares = torch.linalg.vector_norm(
            centered, dim=1, keepdim=True).square()
        if ctx.official:
            std = (squares / (n - 1)).sqrt()  # n = 1: nan, as torch.std
            normalized = centered / std
            scale = std.reciprocal()
        else:
            scale = torch.rsqrt(squares / n + eps)
            normalized = centered * scale
        if not binary:
            ctx.save_for_backward(normalized, scale)
            return normalized.view(weight.shape)
        alpha = normalized.abs().mean(dim=1, keepdim=True)
        ctx.save_for_backward(normalized, scale * alpha)
        return (sign_forward(normalized) * alpha).view(weight.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.reshape(ctx.shape[0], -1)
        if ctx.fused:
            flat, *stats = ctx.saved_tensors
            out = weight_norm_backward(grad.contiguous(), flat, stats,
                                       ctx.official, ctx.binary)
            return out.view(ctx.shape), None, None, None
        normalized, scale = ctx.saved_tensors
        if ctx.binary:
            grad = torch.where(normalized.abs() <= 1, grad, 0.)
        dot = torch.linalg.vecdot(grad, normalized, dim=1).unsqueeze(1)
        n = normalized.shape[1]
        mean_coef = 1.0 / max(n - 1, 1) if ctx.official else 1.0 / n
        out = torch.addcmul(
            grad - grad.mean(dim=1, keepdim=True),
            normalized,
            dot,
            value=-mean_coef)
        return (out * scale).view(ctx.shape), None, None, None


def normalize_weight(weight: Tensor,
                     eps: float = WEIGHT_NORM_EPS,
                     style: str = 'paper') -> Tensor:
    """Channel-wise weight normalization, eq. (6).

    ``style='paper'``: ``(W - mean) / sqrt(var + eps)`` over each output
    channel, with the biased (population) variance, the convention of
    normalization layers. ``style='official'``: ``(W - mean) / std`` with
    the unbiased standard deviation and no ``eps``, as the official NAS-BNN
    code computes it (needed to reproduce its checkpoints exactly).

    Args:
        weight (Tensor): (C_out, C_in, kh, kw).
        eps (float): Added to the variance ('paper'). Defaults to 1e-5 as
            in eq. (6).
        style (str): 'paper' or 'official'. Defaults to 'paper'.

    Returns:
        Tensor: (C_out, C_in, kh, kw), each output channel with mean 0 and
        biased variance ``var / (var + eps)`` ('paper').
    """
    return NormalizedWeightFunction.apply(weight, style, eps, False)


def check_weight_norm(weight_norm: Union[bool, str]) -> Union[bool, str]:
    """Validate a ``weight_norm`` switch (see :class:`BinaryConv2d`)."""
    if weight_norm not in WEIGHT_NORM_CHOICES:
        raise ValueError(f'weight_norm: {weight_norm!r} not in '
                         f'{WEIGHT_NORM_CHOICES}')
    return weight_norm


def binarize_weight(weight: Tensor) -> Tensor:
    """``alpha * sign(W)`` with ``alpha = mean |W|`` per output channel.

    ``alpha`` is detached (as in ReActNet); the sign uses
    :func:`sign_ste`, so the gradient w.r.t. ``W`` is
    ``alpha * grad * 1{|W| <= 1}``.

    Args:
        weight (Tensor): (C_out, ...).

    Returns:
        Tensor: Same shape; output channel o holds only ``+-alpha_o``.
    """
    alpha = weight.detach().abs().mean(
        dim=tuple(range(1, weight.dim())), keepdim=True)
    return sign_ste(weight) * alpha


def binary_conv_weight(weight: Tensor, binary: bool, weight_norm: Union[bool,
                                                                        str],
                       bi_transform: Optional[nn.Module]) -> Tensor:
    """The weight a binary convolution convolves with.

    Args:
        weight (Tensor): Shared full-precision weight (C_out, C_in, kh, kw).
        binary (bool): Binary weights (``alpha * sign``); otherwise the
            full-precision weight is used (Bi-Teacher FWBA, FWFA).
        weight_norm (bool | str): Apply eq. (6) first (True or 'paper'),
            or its 'official' variant (see :func:`normalize_weight`).
        bi_transform (nn.Module, optional): Bi-Transformation, applied only
            when ``binary`` is True.

    Returns:
        Tensor: (C_out, C_in, kh, kw).
    """
    if binary and bi_transform is not None:
        weight = bi_transform(weight)
    if weight_norm:
        style = 'official' if weight_norm == 'official' else 'paper'
        return NormalizedWeightFunction.apply(weight, style, WEIGHT_NORM_EPS,
                                              binary)
    return binarize_weight(weight) if binary else weight


@MODELS.register_module()
class BinaryConv2d(nn.Conv2d):
    """Binary 2D convolution with the :class:`torch.nn.Conv2d` signature.

    The weight is binarized by :func:`binary_conv_weight` (Bi-Transformation,
    weight normalization, ``alpha * sign``). With ``binarize_input=True``
    (the default, for use as ``conv_cfg=dict(type='BinaryConv2d')`` inside
    MMCV ``ConvModule``s of MMDetection necks and heads) the layer binarizes
    its own input with an internal :class:`RSign` (``input_sign``), so it is
    a complete binary convolution wherever a ``Conv2d`` was. Blocks that put
    an explicit ``RSign`` before the convolution (the NAS-BNN supernet) pass
    ``binarize_input=False``. The bias, if any, is a full-precision add.

    Switches: ``binary_weights`` (bool, default True) selects binary or
    full-precision weights; the input binarization is ``input_sign.binary``.
    Both are set by :func:`set_binarization`.

    Registered as ``BinaryConv2d`` in MMEngine's root ``MODELS`` (so MMCV's
    ``build_conv_layer`` finds it from any scope) and in ``nasbnn_mm``.

    Args:
        in_channels (int): Input channels C_in.
        out_channels (int): Output channels C_out.
        kernel_size (int | tuple[int, int]): Kernel size.
        stride (int | tuple[int, int]): Stride. Defaults to 1.
        padding (int | tuple[int, int] | str): Padding. Defaults to 0.
        dilation (int | tuple[int, int]): Dilation. Defaults to 1.
        groups (int): Groups. Defaults to 1.
        bias (bool): Full-precision bias. Defaults to True.
        padding_mode (str): As in ``Conv2d``. Defaults to 'zeros'.
        weight_norm (bool | str): Channel-wise weight normalization, eq. (6)
            (True or 'paper'), the official code's variant ('official', see
            :func:`normalize_weight`), or none (False). Defaults to True.
        bi_transform (bool): Learnable Bi-Transformation (eq. 5) of the
            ``kh*kw`` kernel; 1x1 kernels never get one (a scalar that the
            normalization cancels). Defaults to True.
        binarize_input (bool): Binarize the input with an internal RSign.
            Defaults to True.

    Shape:
        - Input: (N, C_in, H, W).
        - Output: (N, C_out, H_out, W_out).

    Example:
        >>> conv = BinaryConv2d(8, 16, 3, padding=1)
        >>> conv(torch.randn(2, 8, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    ops_kind = 'bops'

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Union[int, Tuple[int, int], str] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 weight_norm: Union[bool, str] = True,
                 bi_transform: bool = True,
                 binarize_input: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, padding_mode)
        self.weight_norm = check_weight_norm(weight_norm)
        kh, kw = self.kernel_size
        self.bi_transform = None
        if bi_transform and kh * kw > 1:
            self.bi_transform = BiTransformation((kh, kw))
        self.input_sign = RSign(in_channels) if binarize_input else None
        self.binary_weights = True

    def forward(self, x: Tensor) -> Tensor:
        """Binarize the input (if enabled) and convolve with binary weights.

        Args:
            x (Tensor): (N, C_in, H, W).

        Returns:
            Tensor: (N, C_out, H_out, W_out).
        """
        if self.input_sign is not None:
            x = self.input_sign(x)
        weight = binary_conv_weight(self.weight, self.binary_weights,
                                    self.weight_norm, self.bi_transform)
        if (self.binary_weights and self.padding_mode == 'zeros'
                and not isinstance(self.padding, str)):
            return xnor_conv2d(x, weight, self.bias, self.stride, self.padding,
                               self.dilation, self.groups)
        return self._conv_forward(x, weight, self.bias)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, weight_norm={self.weight_norm}, '
                f'binary_weights={self.binary_weights}')


MMENGINE_MODELS.register_module('BinaryConv2d', module=BinaryConv2d)
