"""Fused binary-network steps: the next layer's packing in the epilogue.

In a NAS-BNN block (https://arxiv.org/abs/2408.15484) every binary
convolution's float output is both the shortcut of the next addition and,
after the next RSign shift, the sign input of the next binary convolution.
These ops write both in one pass, so the float map is not read again to
pack it and no separate kernel call is needed:

- :func:`binary_conv2d_pack`: :func:`binary_conv2d` plus the packed signs
  of ``out + pack_bias`` for a convolution of ``pack_groups`` groups;
- :func:`rprelu_pack`: the stem's RPReLU on its (N, C, H, W) map, written
  in channels_last memory, plus the packed signs of the first block.

Each has a pure-PyTorch reference (``*_ref``) that runs the unfused steps;
the results are bitwise equal.
"""
from typing import Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor

from .binary_conv import (binary_conv2d_ref, block_weight, load_ext,
                          pack_activation_ref)

__all__ = [
    'binary_conv2d_pack', 'binary_conv2d_pack_ref', 'rprelu_pack',
    'rprelu_pack_ref'
]


def binary_conv2d_pack(
        x: Tensor,
        weight: Tensor,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        scale: Optional[Tensor] = None,
        bias: Optional[Tensor] = None,
        residual: Optional[Tensor] = None,
        act: Optional[Sequence[Tensor]] = None,
        pool_residual: bool = False,
        pack_groups: int = 1,
        pack_bias: Optional[Tensor] = None,
        out: Optional[Tensor] = None,
        packed_out: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """:func:`binary_conv2d`, and its output's signs packed for the next
    binary convolution.

    The packed output equals ``pack_activation(out, pack_groups,
    pack_bias)``. Where C_out / G and C_out / pack_groups are multiples of
    8 (every NAS-BNN layer) the kernel's epilogue writes the sign bits
    with the float outputs; otherwise they are packed in a second pass
    inside the same call.

    Args:
        x, weight, in_channels, out_channels, stride, padding, groups,
            scale, bias, residual, act, pool_residual, out: As
            :func:`binary_conv2d`.
        pack_groups (int): Groups of the convolution that reads the packed
            output. Defaults to 1.
        pack_bias (Tensor, optional): (C_out, ) added before the sign (the
            next RSign's shift). Defaults to None.
        packed_out (Tensor, optional): (N, OH, OW, pack_groups * Wg) uint64
            to write the signs into. Defaults to None (a new tensor).

    Returns:
        tuple[Tensor, Tensor]: ``out`` (N, C_out, OH, OW) float32 in
        channels_last memory and the packed signs (N, OH, OW,
        pack_groups * Wg) uint64.
    """
    if weight.dim() == 4:
        weight = block_weight(weight, groups)
    act = tuple(act) if act is not None else (None, None, None)
    return load_ext().binary_conv2d(
        x,
        weight,
        in_channels,
        out_channels,
        stride,
        padding,
        scale,
        bias,
        residual,
        *act,
        pool_residual=pool_residual,
        pack_groups=pack_groups,
        pack_bias=pack_bias,
        out=out,
        packed_out=packed_out)


def binary_conv2d_pack_ref(
        x: Tensor,
        weight: Tensor,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        scale: Optional[Tensor] = None,
        bias: Optional[Tensor] = None,
        residual: Optional[Tensor] = None,
        act: Optional[Sequence[Tensor]] = None,
        pool_residual: bool = False,
        pack_groups: int = 1,
        pack_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Pure-PyTorch :func:`binary_conv2d_pack` (canonical weight only)."""
    out = binary_conv2d_ref(x, weight, in_channels, out_channels, stride,
                            padding, groups, scale, bias, residual, act,
                            pool_residual)
    return out, pack_activation_ref(out, pack_groups, pack_bias)


def rprelu_pack(x: Tensor,
                act: Sequence[Tensor],
                pack_groups: int = 1,
                pack_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """RPReLU of a float map in channels_last memory, and its signs packed.

    The stem's last step: ``prelu(x + bias_in, weight) + bias_out`` with
    the float operations of :class:`RPReLU`, so the output equals it
    bitwise, written as the binary blocks read it, together with
    ``pack_activation(out, pack_groups, pack_bias)`` for the first block.

    Args:
        x (Tensor): (N, C, H, W) float32, contiguous or channels_last.
        act (Sequence[Tensor]): RPReLU ``(bias_in, weight, bias_out)``,
            each (C, ).
        pack_groups (int): Groups of the convolution that reads the packed
            output. Defaults to 1.
        pack_bias (Tensor, optional): (C, ) added before the sign (the
            RSign shift). Defaults to None.

    Returns:
        tuple[Tensor, Tensor]: (N, C, H, W) float32 in channels_last memory
        and (N, H, W, pack_groups * Wg) uint64.
    """
    bias_in, weight, bias_out = act
    return load_ext().rprelu_pack(x, bias_in, weight, bias_out, pack_groups,
                                  pack_bias)


def rprelu_pack_ref(
        x: Tensor,
        act: Sequence[Tensor],
        pack_groups: int = 1,
        pack_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Pure-PyTorch :func:`rprelu_pack`: the unfused float ops."""
    bias_in, weight, bias_out = act
    out = F.prelu(x + bias_in.view(1, -1, 1, 1), weight)
    out = out + bias_out.view(1, -1, 1, 1)
    return out, pack_activation_ref(out, pack_groups, pack_bias)
