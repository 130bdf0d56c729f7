"""Bit-packed binary layers of a NAS-BNN subnet (CPU inference).

NAS-BNN (https://arxiv.org/abs/2408.15484) subnets are binary separable
blocks. Here each binary convolution of a static block keeps only the sign
bits of its weight and runs on the XNOR-popcount kernels of
:mod:`nasbnn_mm.ops`; its per-channel scale ``alpha``, the BN after it (eval
statistics), the Bi-Real shortcut add and the RPReLU are fused into the
kernel's float epilogue::

    pack(x + b_sign1)  -> XNOR-popcount k×k conv -> dot * s1 + t1 + pool(x)
                       -> RPReLU                                 = out
    pack(out + b_sign2) -> XNOR-popcount 1×1 conv -> dot * s2 + t2
                       + tile(out) -> RPReLU

with ``s = alpha * gamma / sqrt(var + eps)`` and
``t = beta - mean * gamma / sqrt(var + eps)`` per output channel. The signs
are the float model's exactly (the kernels are exact on +-1), so only the
float rounding of the folded affine differs. Activations between blocks
are kept in channels_last memory, the kernels' layout.

Binary weights are stored 1 bit each (:func:`pack_bits_flat`); the kernels'
blocked layout is rebuilt from them on first use.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from nasbnn_mm.models.backbones import BinarySeparableBlock
from nasbnn_mm.models.layers import BinaryConv2d, RPReLU, RSign
from nasbnn_mm.models.layers.binary_conv import binary_conv_weight
from nasbnn_mm.models.layers.shortcut import bireal_pool
from nasbnn_mm.ops import BinaryConvParams
from nasbnn_mm.ops import binary_conv as ops

__all__ = [
    'PackedBinaryConv2d', 'PackedSeparableBlock', 'PlanTracked',
    'copy_sign_shift'
]


class PlanTracked(nn.Module):
    """A packed layer whose changes :attr:`epoch` counts.

    Forwards that cache kernel arguments (:class:`PackedNASBNN`) rebuild
    them when the epoch moved: every attribute assignment (a new buffer,
    sub-module or cached weight) and every ``_apply`` (``to``, ``float``)
    of a packed layer anywhere advances it; in-place changes need no
    rebuild (the cached arguments are the tensors themselves).
    """
    epoch = 0

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        PlanTracked.epoch += 1

    def _apply(self, *args, **kwargs):
        PlanTracked.epoch += 1
        return super()._apply(*args, **kwargs)


@torch.no_grad()
def copy_sign_shift(packed: RSign, sign: RSign, name: str) -> None:
    """Copy the shift of the binary RSign ``sign`` (called ``name``) into
    ``packed``; a full-precision one cannot be packed (ValueError)."""
    if not sign.binary:
        raise ValueError(f'{name}.binary is False: only binary activations '
                         'can be packed')
    packed.bias.copy_(sign.bias)


class PackedBinaryConv2d(PlanTracked):
    """Binary conv + folded BN + shortcut add + RPReLU on packed inputs.

    Buffers: ``weight_bits`` (the weight signs, 1 bit each, in
    (C_out, KH, KW, C_in / G) order, see :func:`ops.pack_bits_flat`),
    ``scale`` and ``bias`` (the folded ``alpha`` and BN, (C_out, )) and the
    RPReLU ``act_bias_in``, ``act_weight``, ``act_bias_out``.

    Args:
        in_channels (int): C_in.
        out_channels (int): C_out.
        kernel_size (int): Square kernel size K.
        stride (int): Stride. Defaults to 1.
        padding (int): Zero padding. Defaults to 0.
        groups (int): Groups. Defaults to 1.

    Shape:
        - Input: packed (N, H, W, G * Wg) uint64 and a residual
          (N, C_r, OH, OW) float32 added with channel tiling.
        - Output: (N, C_out, OH, OW) float32, channels_last memory.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 padding: int = 0,
                 groups: int = 1) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'channels {in_channels} -> {out_channels} not '
                             f'divisible by groups {groups}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.groups = groups
        bits = self.num_binary_weights
        self.register_buffer('weight_bits',
                             torch.zeros(-(-bits // 64), dtype=torch.uint64))
        for name, value in (('scale', 1.), ('bias', 0.), ('act_bias_in', 0.),
                            ('act_weight', 0.25), ('act_bias_out', 0.)):
            self.register_buffer(name, torch.full((out_channels, ), value))
        self._blocked: Optional[Tensor] = None
        self._blocked_key: Optional[Tuple[int, int]] = None

    @property
    def num_binary_weights(self) -> int:
        """int: Binary weights of this conv, ``C_out * C_in / G * K * K``."""
        return (self.out_channels * self.in_channels // self.groups *
                self.kernel_size**2)

    @classmethod
    @torch.no_grad()
    def from_float(cls, conv: BinaryConv2d, bn: nn.BatchNorm2d,
                   act: RPReLU) -> 'PackedBinaryConv2d':
        """Fold a :class:`BinaryConv2d`, its BN (eval statistics) and RPReLU.

        Args:
            conv (BinaryConv2d): With binary weights and square kernel,
                stride and padding.
            bn (nn.BatchNorm2d): The BN after it (running statistics).
            act (RPReLU): The RPReLU after the shortcut add.

        Raises:
            ValueError: If ``conv`` does not binarize its weights or is not
                a plain square zero-padded convolution.
        """
        k, s, p = conv.kernel_size, conv.stride, conv.padding
        if not conv.binary_weights:
            raise ValueError('conv.binary_weights is False: only binary '
                             'weights can be packed')
        if (len(set(k)) != 1 or len(set(s)) != 1 or isinstance(p, str)
                or len(set(p)) != 1 or set(conv.dilation) != {1}
                or conv.padding_mode != 'zeros'):
            raise ValueError(
                f'conv: kernel {k}, stride {s}, padding {p}, dilation '
                f'{conv.dilation}, {conv.padding_mode}: only square, '
                'undilated, zero-padded convolutions can be packed')
        packed = cls(conv.in_channels, conv.out_channels, k[0], s[0], p[0],
                     conv.groups)
        weight = binary_conv_weight(conv.weight.float(), True,
                                    conv.weight_norm, conv.bi_transform)
        return packed._fold(weight, conv.bias, bn, act)

    @classmethod
    @torch.no_grad()
    def from_linear(cls, fc: nn.Linear, bn: nn.BatchNorm1d,
                    act: RPReLU) -> 'PackedBinaryConv2d':
        """Fold a binary linear layer (a 1×1 conv on a 1×1 map), its BN and
        RPReLU.

        Args:
            fc (nn.Linear): With ``weight_norm`` and ``binary_weights``, as
                :class:`~nasbnn_mm.models.detection.BinaryLinear`.
            bn (nn.BatchNorm1d): The BN after it (running statistics).
            act (RPReLU): The RPReLU after the shortcut add.
        """
        if not fc.binary_weights:
            raise ValueError('fc.binary_weights is False: only binary '
                             'weights can be packed')
        packed = cls(fc.in_features, fc.out_features, 1)
        weight = binary_conv_weight(fc.weight.float(), True, fc.weight_norm,
                                    None)
        return packed._fold(weight[:, :, None, None], fc.bias, bn, act)

    def _fold(self, weight: Tensor, conv_bias: Optional[Tensor], bn: nn.Module,
              act: RPReLU) -> 'PackedBinaryConv2d':
        """Store ``weight``'s signs and fold alpha, BN and RPReLU.

        Args:
            weight (Tensor): (C_out, C_in / G, K, K) binarized weight, every
                entry of channel o ``+-alpha_o``.
            conv_bias (Tensor, optional): (C_out, ) bias before the BN.
            bn (nn.Module): BN (running statistics) after the layer.
            act (RPReLU): The RPReLU after the shortcut add.
        """
        alpha = weight.abs().flatten(1).amax(1).double()
        self.weight_bits.copy_(
            ops.pack_bits_flat(weight.permute(0, 2, 3, 1) >= 0))
        a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.double() - bn.running_mean.double() * a
        if conv_bias is not None:
            shift = shift + a * conv_bias.double()
        self.scale.copy_(alpha * a)
        self.bias.copy_(shift)
        self.act_bias_in.copy_(act.bias_in)
        self.act_weight.copy_(act.weight)
        self.act_bias_out.copy_(act.bias_out)
        return self

    def packed_weight(self) -> Tensor:
        """The weight signs as (C_out, KH, KW, Wg) uint64 (per-group
        word padding), the input of :func:`ops.block_weight`."""
        k, cin_g = self.kernel_size, self.in_channels // self.groups
        bits = ops.unpack_bits_flat(self.weight_bits, self.num_binary_weights)
        return ops._pack_last_dim(bits.view(self.out_channels, k, k, cin_g), 1)

    def blocked_weight(self) -> Tensor:
        """The kernels' blocked weight, rebuilt when ``weight_bits``
        changes."""
        key = (self.weight_bits.data_ptr(), self.weight_bits._version)
        if self._blocked is None or key != self._blocked_key:
            self._blocked = ops.block_weight(self.packed_weight(), self.groups)
            self._blocked_key = key
        return self._blocked

    def _act(self) -> Tuple[Tensor, Tensor, Tensor]:
        return self.act_bias_in, self.act_weight, self.act_bias_out

    def params(self) -> BinaryConvParams:
        """This conv as the fused ops of :mod:`nasbnn_mm.ops.fused` take
        it (blocked weight, folded affine, RPReLU)."""
        return BinaryConvParams(self.blocked_weight(), self.in_channels,
                                self.out_channels, self.stride, self.padding,
                                self.groups, self.scale, self.bias,
                                self._act())

    def forward(self,
                x: Tensor,
                residual: Optional[Tensor],
                reference: bool = False) -> Tensor:
        """Convolve packed ``x``, add ``residual`` (channel-tiled), RPReLU.

        Args:
            x (Tensor): (N, H, W, G * Wg) uint64.
            residual (Tensor, optional): (N, C_r, OH, OW) float32, or None
                for no shortcut.
            reference (bool): Use the pure-PyTorch reference instead of
                the kernels. Defaults to False.

        Returns:
            Tensor: (N, C_out, OH, OW) float32.
        """
        if reference:
            return ops.binary_conv2d_ref(x, self.packed_weight(),
                                         self.in_channels, self.out_channels,
                                         self.stride, self.padding,
                                         self.groups, self.scale, self.bias,
                                         residual, self._act())
        return ops.binary_conv2d(x, self.blocked_weight(), self.in_channels,
                                 self.out_channels, self.stride, self.padding,
                                 self.groups, self.scale, self.bias, residual,
                                 self._act())

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, '
                f'kernel_size={self.kernel_size}, stride={self.stride}, '
                f'padding={self.padding}, groups={self.groups}')


class PackedSeparableBlock(PlanTracked):
    """Packed form of :class:`BinarySeparableBlock`.

    Args:
        in_channels (int): Input width C_in.
        out_channels (int): Output width C_out.
        kernel_size (int): Kernel size of the k×k conv.
        groups (int): Groups of the k×k conv.
        stride (int): Stride of the k×k conv, 1 or 2.

    Shape:
        - Input: (N, C_in, H, W) float32.
        - Output: (N, C_out, ceil(H / stride), ceil(W / stride)) float32,
          channels_last.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 groups: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride {stride} not in (1, 2)')
        self.stride = stride
        self.sign1 = RSign(in_channels)
        self.conv1 = PackedBinaryConv2d(in_channels, in_channels, kernel_size,
                                        stride, (kernel_size - 1) // 2, groups)
        self.sign2 = RSign(in_channels)
        self.conv2 = PackedBinaryConv2d(in_channels, out_channels, 1)
        for sign in (self.sign1, self.sign2):
            sign.bias.requires_grad_(False)

    @classmethod
    @torch.no_grad()
    def from_float(cls, block: BinarySeparableBlock) -> 'PackedSeparableBlock':
        """Pack a float block (eval semantics: BN running statistics)."""
        conv1, conv2 = block.conv1, block.conv2
        packed = cls(conv1.in_channels, conv2.out_channels,
                     conv1.kernel_size[0], conv1.groups, block.stride)
        copy_sign_shift(packed.sign1, block.sign1, 'sign1')
        copy_sign_shift(packed.sign2, block.sign2, 'sign2')
        packed.conv1 = PackedBinaryConv2d.from_float(conv1, block.bn1,
                                                     block.act1)
        packed.conv2 = PackedBinaryConv2d.from_float(conv2, block.bn2,
                                                     block.act2)
        return packed

    def forward(self, x: Tensor, reference: bool = False) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H / s, W / s), channels_last.

        Args:
            x (Tensor): Float input, any memory format (the stem's output
                is moved to channels_last here; later blocks' outputs
                already are).
            reference (bool): Use the pure-PyTorch reference ops instead
                of the kernels. Defaults to False.
        """
        x = x.contiguous(memory_format=torch.channels_last)
        pack = ops.pack_activation_ref if reference else ops.pack_activation
        shortcut = bireal_pool(x) if self.stride == 2 else x
        out = self.conv1(
            pack(x, self.conv1.groups, self.sign1.bias), shortcut, reference)
        return self.conv2(pack(out, 1, self.sign2.bias), out, reference)
