"""Fused binary-network steps: the next layer's packing in the epilogue.

In a NAS-BNN block (https://arxiv.org/abs/2408.15484) every binary
convolution's float output is both the shortcut of the next addition and,
after the next RSign shift, the sign input of the next binary convolution.
These ops write both in one pass, so the float map is not read again to
pack it and no separate kernel call is needed:

- :func:`binary_conv2d_pack`: :func:`binary_conv2d` plus the packed signs
  of ``out + pack_bias`` for a convolution of ``pack_groups`` groups;
- :func:`binary_block`: a whole separable block (k×k conv, then 1×1
  conv, each with its folded BN, shortcut and RPReLU) in one call; where
  there are enough output rows per thread, the intermediate map stays in
  per-thread row buffers (the 1×1 conv needs one row at a time);
- :func:`block_chain`: consecutive blocks in one extension call, their
  arguments converted once (:func:`tensor_watch` tells when to convert
  them again);
- :func:`rprelu_pack`: the stem's RPReLU on its (N, C, H, W) map, written
  in channels_last memory, plus the packed signs of the first block.

Each has a pure-PyTorch reference (``*_ref``) that runs the unfused steps;
the results are bitwise equal.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor

from .binary_conv import (binary_conv2d_ref, block_weight, load_ext,
                          pack_activation_ref)

__all__ = [
    'BinaryConvParams', 'binary_conv2d_pack', 'binary_conv2d_pack_ref',
    'binary_block', 'binary_block_args', 'binary_block_prepared',
    'block_chain', 'packed_logits', 'tensor_watch', 'binary_block_ref',
    'rprelu_pack', 'rprelu_pack_ref'
]


class BinaryConvParams(NamedTuple):
    """A binary convolution with its fused epilogue, as the ops take it.

    ``weight`` is the blocked form (:func:`block_weight`) for the kernels
    or the canonical (C_out, K, K, Wg) form for the references; the other
    fields are the arguments of :func:`binary_conv2d` of the same names.
    """
    weight: Tensor
    in_channels: int
    out_channels: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    scale: Optional[Tensor] = None
    bias: Optional[Tensor] = None
    act: Optional[Tuple[Tensor, Tensor, Tensor]] = None


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


def binary_block(
        x_packed: Tensor,
        x: Tensor,
        conv1: BinaryConvParams,
        conv2: BinaryConvParams,
        sign2_bias: Optional[Tensor] = None,
        pool_residual: bool = False,
        pack_groups: int = 0,
        pack_bias: Optional[Tensor] = None,
        out: Optional[Tensor] = None,
        packed_out: Optional[Tensor] = None
) -> Tuple[Tensor, Optional[Tensor]]:
    """A binary separable block of NAS-BNN in one call.

    ``out = conv1(x_packed) + shortcut(x)`` (RPReLU), then ``conv2(sign(out
    + sign2_bias)) + out`` (channel-tiled, RPReLU): the same as
    :func:`binary_conv2d_pack` for ``conv1`` (``pack_groups=1``,
    ``pack_bias=sign2_bias``) followed by :func:`binary_conv2d` (or
    :func:`binary_conv2d_pack` with ``pack_groups``) for ``conv2``, bitwise.

    Args:
        x_packed (Tensor): (N, H, W, G1 * Wg) uint64, the packed signs of
            the block input for ``conv1``.
        x (Tensor): (N, C, H, W) float32 block input (the shortcut),
            channels_last memory avoids a copy.
        conv1 (BinaryConvParams): The k×k conv, C -> C, blocked weight.
        conv2 (BinaryConvParams): The 1×1 conv, C -> C_out, groups 1.
        sign2_bias (Tensor, optional): (C, ) shift of the sign before
            ``conv2``. Defaults to None.
        pool_residual (bool): The shortcut of ``conv1`` is the 2×2 average
            pool of ``x`` (stride-2 blocks). Defaults to False.
        pack_groups (int): Also return the output's signs packed for a
            convolution of this many groups (the next block's); 0: no.
            Defaults to 0.
        pack_bias (Tensor, optional): (C_out, ) shift of that sign.
            Defaults to None.
        out (Tensor, optional): (N, C_out, OH, OW) float32 in
            channels_last memory to write the output into; must not
            overlap ``x``. Defaults to None (a new tensor).
        packed_out (Tensor, optional): (N, OH, OW, pack_groups * Wg)
            uint64 for the packed signs. Defaults to None.

    Returns:
        tuple[Tensor, Tensor | None]: (N, C_out, OH, OW) float32 in
        channels_last memory, and the packed signs or None.
    """
    return binary_block_prepared(
        x_packed, x,
        binary_block_args(conv1, conv2, sign2_bias, pool_residual, pack_groups,
                          pack_bias, out, packed_out))


def binary_block_args(conv1: BinaryConvParams,
                      conv2: BinaryConvParams,
                      sign2_bias: Optional[Tensor] = None,
                      pool_residual: bool = False,
                      pack_groups: int = 0,
                      pack_bias: Optional[Tensor] = None,
                      out: Optional[Tensor] = None,
                      packed_out: Optional[Tensor] = None) -> tuple:
    """The arguments of :func:`binary_block` after ``(x_packed, x)``, in
    the form :func:`binary_block_prepared` takes them: built once, they
    spare a forward that runs the same blocks again the per-call Python."""
    act1 = conv1.act if conv1.act is not None else (None, None, None)
    act2 = conv2.act if conv2.act is not None else (None, None, None)
    return (conv1.weight, conv1.stride, conv1.padding, conv1.scale, conv1.bias,
            *act1, pool_residual, sign2_bias, conv2.weight, conv2.out_channels,
            conv2.scale, conv2.bias, *act2, pack_groups, pack_bias, out,
            packed_out)


def block_chain(blocks: Sequence[tuple], compact_taps: bool = True):
    """Consecutive blocks, each given by its :func:`binary_block_args`
    (without ``out``), as one extension object whose ``run(x_packed, x,
    keep)`` runs them all and returns the outputs of the blocks ``keep``
    (increasing indices): one call instead of one per block.

    With ``compact_taps``, the k×k convolutions whose groups have at most
    56 channels (a multiple of 8 in the weight blocks; k = 3 or 5) read
    their taps compacted: tap after tap in the bits their channels fill
    instead of a 64-bit word each (4 words for the 9 taps of 24 channels
    instead of 9), for the output pixels whose taps all lie inside the
    input. The dot products, and so the outputs, are the same bits;
    ``compacted()`` tells which blocks do.

    A block whose output is not kept and feeds a stride-2 block writes
    only that block's pooled shortcut, the 2×2 average pool of its output
    (4× less memory to write and read back; same bits), where it runs in
    row buffers on an even size."""
    return load_ext().BlockChain(list(blocks), compact_taps)


def packed_logits(stem: tuple, blocks: Sequence[tuple],
                  head_weight_blocks: Tensor, head_bias: Tensor,
                  watched: Sequence[Tensor]):
    """A packed NAS-BNN's logits as one extension object: ``run(x)`` runs
    the stem (``stem``: :func:`~nasbnn_mm.ops.stem.quantized_stem_args`),
    every block (their :func:`binary_block_args`) and
    :func:`~nasbnn_mm.ops.head.classifier_head` in one call, or returns
    None once a tensor of ``watched`` was written in place or moved (see
    :func:`tensor_watch`)."""
    return load_ext().PackedLogits(stem, list(blocks), head_weight_blocks,
                                   head_bias, list(watched))


def tensor_watch(tensors: Sequence[Tensor]):
    """An extension object whose ``changed()`` tells, in one call, whether
    any of ``tensors`` moved to another storage or was written in place
    (its version counter) since the watch was made."""
    return load_ext().TensorWatch(list(tensors))


def binary_block_prepared(x_packed: Tensor, x: Tensor,
                          args: tuple) -> Tuple[Tensor, Optional[Tensor]]:
    """:func:`binary_block` with the arguments of
    :func:`binary_block_args` (the tensors are read at the call, so
    in-place changes to them are seen)."""
    return load_ext().binary_block(x_packed, x, *args)


def binary_block_ref(
        x_packed: Tensor,
        x: Tensor,
        conv1: BinaryConvParams,
        conv2: BinaryConvParams,
        sign2_bias: Optional[Tensor] = None,
        pool_residual: bool = False,
        pack_groups: int = 0,
        pack_bias: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
    """Pure-PyTorch :func:`binary_block` (canonical weights)."""
    out, out_packed = binary_conv2d_pack_ref(
        x_packed,
        **conv1._asdict(),
        residual=x,
        pool_residual=pool_residual,
        pack_groups=1,
        pack_bias=sign2_bias)
    out2 = binary_conv2d_ref(out_packed, **conv2._asdict(), residual=out)
    if not pack_groups:
        return out2, None
    return out2, pack_activation_ref(out2, pack_groups, pack_bias)


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
