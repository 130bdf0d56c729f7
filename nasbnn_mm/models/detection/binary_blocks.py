"""Binary blocks for the neck and heads of a detector.

NAS-BNN (https://arxiv.org/abs/2408.15484) binarizes its backbone with the
scheme of ReActNet (sec. 4.1.2): ``RSign -> binary conv (channel-wise weight
normalization, eq. 6, then alpha * sign with a per-output-channel alpha)
-> BN -> (+ Bi-Real shortcut) -> RPReLU``. The blocks here run the same
scheme where a detector's neck or heads have a full-precision conv or linear
layer, so that a binary precision map is a config choice:

* :class:`BinaryConvBlock` has the :class:`torch.nn.Conv2d` signature and
  the attributes MMCV's ``ConvModule`` reads from its conv, so it goes into
  an MMDetection FPN as ``conv_cfg=dict(type='nasbnn_mm.BinaryConvBlock')``
  (with the FPN's default ``norm_cfg=None, act_cfg=None``: the block has its
  own BN and RPReLU);
* :class:`BinaryLinearBlock` replaces the ``nn.Linear`` + ReLU of a box
  head, with :class:`BinaryLinear` (a binary GEMM) inside.

Each block keeps the binary layer as one submodule (``conv`` / ``fc``) that
takes the already binarized input, so a packed 1-bit layer can replace it
alone. Bi-Real shortcuts (Bi-Real Net, the paper's Fig. 1) are added where
the shapes allow: stride 1 and an output of the input's size and at least
its width; an identity when the widths match, the input's channels tiled
(Fig. 1(b)) when the output is wider. A layer that narrows the width (e.g.
an FPN lateral conv from 768 to 256 channels, or the first box-head FC from
``256 * 7 * 7`` to 1024) has none: keeping a slice would drop channels, the
information loss the paper's Non-Decreasing constraint avoids. No
Bi-Transformation: it adapts the supernet's shared weights (sec. 3.3.2),
which these layers are not.
"""
from typing import Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from nasbnn_mm.registry import MODELS
from ..layers import BinaryConv2d, RPReLU, RSign, binary_conv_weight
from ..layers.binary_conv import check_weight_norm
from ..layers.shortcut import bireal_shortcut

__all__ = ['BinaryLinear', 'BinaryConvBlock', 'BinaryLinearBlock']

WeightNormType = Union[bool, str]
IntPair = Union[int, Tuple[int, int]]

# The attributes mmcv's ConvModule copies from the conv it builds.
CONV_MODULE_ATTRS = ('in_channels', 'out_channels', 'kernel_size', 'stride',
                     'padding', 'dilation', 'transposed', 'output_padding',
                     'groups')


class BinaryLinear(nn.Linear):
    """Linear layer with binary weights: a binary GEMM on binary inputs.

    The weight goes through the same transform as a :class:`BinaryConv2d`
    weight: channel-wise normalization (eq. 6) per output feature, then
    ``alpha * sign`` with ``alpha = mean |W|`` per output feature. The input
    is used as given (binarize it first, e.g. with :class:`RSign` as
    :class:`BinaryLinearBlock` does). The bias, if any, is a
    full-precision add. ``binary_weights`` (bool) is the switch of
    :func:`nasbnn_mm.models.layers.set_binarization`.

    Args:
        in_features (int): Input features C_in.
        out_features (int): Output features C_out.
        bias (bool): Full-precision bias. Defaults to True.
        weight_norm (bool | str): Weight normalization: True/'paper' (eq.
            6), 'official' or False, as in :class:`BinaryConv2d`. Defaults
            to True.

    Shape:
        - Input: (N, C_in).
        - Output: (N, C_out).

    Example:
        >>> import torch
        >>> fc = BinaryLinear(16, 4)
        >>> fc(torch.randn(2, 16).sign()).shape
        torch.Size([2, 4])
    """

    ops_kind = 'bops'

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 weight_norm: WeightNormType = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.weight_norm = check_weight_norm(weight_norm)
        self.binary_weights = True

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in) -> (N, C_out) with the binarized weight."""
        weight = binary_conv_weight(self.weight, self.binary_weights,
                                    self.weight_norm, None)
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, weight_norm={self.weight_norm}, '
                f'binary_weights={self.binary_weights}')


def _keeps_size(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` maps (H, W) to (H, W) for every input size."""
    if conv.stride != (1, 1):
        return False
    if isinstance(conv.padding, str):
        return conv.padding == 'same'
    return all(
        2 * p == d * (k - 1)
        for p, d, k in zip(conv.padding, conv.dilation, conv.kernel_size))


@MODELS.register_module()
class BinaryConvBlock(nn.Module):
    """RSign -> binary conv -> BN -> (+ Bi-Real shortcut) -> RPReLU.

    A drop-in for ``nn.Conv2d`` in MMCV ``ConvModule``s (FPN lateral and
    output convs): ``conv_cfg=dict(type='nasbnn_mm.BinaryConvBlock')``.

    Args:
        in_channels (int): Input channels C_in.
        out_channels (int): Output channels C_out.
        kernel_size (int | tuple[int, int]): Kernel size.
        stride (int | tuple[int, int]): Stride. Defaults to 1.
        padding (int | tuple[int, int] | str): Padding. Defaults to 0.
        dilation (int | tuple[int, int]): Dilation. Defaults to 1.
        groups (int): Groups. Defaults to 1.
        bias (bool): Part of the ``Conv2d`` signature ``ConvModule`` calls;
            the binary conv has no bias whatever it says, as the BN after
            it has one. Defaults to True.
        weight_norm (bool | str): Weight normalization of the binary conv
            (see :class:`BinaryConv2d`). Defaults to True (eq. 6).
        shortcut (bool): Add the Bi-Real shortcut where the shapes allow it
            (``has_shortcut`` says whether it does). Defaults to True.

    Shape:
        - Input: (N, C_in, H, W).
        - Output: (N, C_out, H_out, W_out), as the conv gives.

    Example:
        >>> import torch
        >>> block = BinaryConvBlock(8, 16, 3, padding=1)
        >>> block.has_shortcut, block(torch.randn(2, 8, 5, 5)).shape
        (True, torch.Size([2, 16, 5, 5]))
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: IntPair,
                 stride: IntPair = 1,
                 padding: Union[IntPair, str] = 0,
                 dilation: IntPair = 1,
                 groups: int = 1,
                 bias: bool = True,
                 weight_norm: WeightNormType = True,
                 shortcut: bool = True) -> None:
        super().__init__()
        self.sign = RSign(in_channels)
        self.conv = BinaryConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
            weight_norm=weight_norm,
            bi_transform=False,
            binarize_input=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = RPReLU(out_channels)
        for name in CONV_MODULE_ATTRS:
            setattr(self, name, getattr(self.conv, name))
        self.has_shortcut = (
            shortcut and out_channels >= in_channels
            and _keeps_size(self.conv))

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
        out = self.bn(self.conv(self.sign(x)))
        if self.has_shortcut:
            out = out + bireal_shortcut(x, self.out_channels, 1)
        return self.act(out)


@MODELS.register_module()
class BinaryLinearBlock(nn.Module):
    """RSign -> binary linear -> BN -> (+ Bi-Real shortcut) -> RPReLU.

    The fully connected form of :class:`BinaryConvBlock`, for the FCs of
    RoI box heads. RSign, BN and RPReLU act per feature (a feature is a
    channel of a 1×1 map); the shortcut needs ``out_features >=
    in_features``.

    Args:
        in_features (int): Input features C_in.
        out_features (int): Output features C_out.
        weight_norm (bool | str): Weight normalization of the binary linear
            (see :class:`BinaryLinear`). Defaults to True (eq. 6).
        shortcut (bool): Add the Bi-Real shortcut where the widths allow it
            (``has_shortcut``). Defaults to True.

    Shape:
        - Input: (N, C_in).
        - Output: (N, C_out).

    Example:
        >>> import torch
        >>> block = BinaryLinearBlock(32, 8)
        >>> block.has_shortcut, block(torch.randn(4, 32)).shape
        (False, torch.Size([4, 8]))
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 weight_norm: WeightNormType = True,
                 shortcut: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.sign = RSign(in_features)
        self.fc = BinaryLinear(
            in_features, out_features, bias=False, weight_norm=weight_norm)
        self.bn = nn.BatchNorm1d(out_features)
        self.act = RPReLU(out_features)
        self.has_shortcut = shortcut and out_features >= in_features

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in) -> (N, C_out)."""
        # RSign, RPReLU and the shortcut work on (N, C, H, W): a 1x1 map
        x = x[:, :, None, None]
        out = self.bn(self.fc(self.sign(x).flatten(1)))[:, :, None, None]
        if self.has_shortcut:
            out = out + bireal_shortcut(x, self.out_features, 1)
        return self.act(out).flatten(1)
