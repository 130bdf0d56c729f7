"""The 8-bit stem of a packed NAS-BNN in one op.

NAS-BNN's stem (https://arxiv.org/abs/2408.15484, sec. 4.1.2) is an 8-bit
LSQ convolution, BN and RPReLU. With its input quantized too, the
convolution is one of integer codes: ``x_q = c_x * s_x`` and
``w_q = c_w * s_w``, so ``conv(x_q, w_q) = s_x * s_w * conv(c_x, c_w)``.
:func:`quantized_stem` computes ``conv(c_x, c_w)`` exactly (integers in
float32: every sum stays below 2^24) and folds ``s_x * s_w`` with the BN
into one per-channel affine, as the packed binary layers fold ``alpha``
(the float model rounds each product instead, so the two differ in the
last bits, like the binary layers' folded affine). It writes the RPReLU
output in channels_last memory and the first block's packed signs, in one
pass over the image. A stem whose input is not quantized (the official
code's) runs the same way on the float input, ``conv(x, w_q) = s_w *
conv(x, c_w)``. The sums are taken in the fixed order of
:func:`quantized_stem_ref`, so inexact ones (a float input, or codes over
so many taps that a sum could pass 2^24) round the same way there.
"""
from typing import NamedTuple, Optional, Tuple

import torch.nn.functional as F
from torch import Tensor

from .binary_conv import load_ext
from .fused import rprelu_pack_ref

__all__ = [
    'QuantizedStemParams', 'quantized_stem', 'quantized_stem_args',
    'quantized_stem_ref'
]


class QuantizedStemParams(NamedTuple):
    """The folded 8-bit stem, as :func:`quantized_stem` takes it.

    ``step``, ``q_min``, ``q_max``: the input quantizer (codes
    ``round(clamp(x / step, q_min, q_max))``; ``step`` None: the input is
    not quantized, and ``q_min``, ``q_max`` bound the weight codes);
    ``weight_codes``: (C_out, C_in, K, K) float32 integers; ``scale``,
    ``shift``: (C_out, ) the folded ``step * weight step`` and BN;
    ``act``: the RPReLU ``(bias_in, weight, bias_out)``, each (C_out, ).
    """
    step: Optional[float]
    q_min: int
    q_max: int
    weight_codes: Tensor
    stride: int
    padding: int
    scale: Tensor
    shift: Tensor
    act: Tuple[Tensor, Tensor, Tensor]


def quantized_stem(
        x: Tensor,
        params: QuantizedStemParams,
        pack_groups: int = 1,
        pack_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The quantized stem and the first block's packed signs, in one call.

    Bitwise equal to :func:`quantized_stem_ref` on every kernel path.

    Args:
        x (Tensor): (N, C_in, H, W) float32 images.
        params (QuantizedStemParams): The folded stem.
        pack_groups (int): Groups of the convolution that reads the packed
            output. Defaults to 1.
        pack_bias (Tensor, optional): (C_out, ) added before the sign (the
            RSign shift). Defaults to None.

    Returns:
        tuple[Tensor, Tensor]: (N, C_out, OH, OW) float32 in channels_last
        memory and (N, OH, OW, pack_groups * Wg) uint64.
    """
    return load_ext().quantized_stem(
        x, *quantized_stem_args(params, pack_groups, pack_bias))


def quantized_stem_args(params: QuantizedStemParams,
                        pack_groups: int = 1,
                        pack_bias: Optional[Tensor] = None) -> tuple:
    """The arguments of the extension's ``quantized_stem`` after ``x`` (see
    :func:`quantized_stem`), as :func:`~nasbnn_mm.ops.fused.packed_logits`
    takes them."""
    p = params
    bias_in, weight, bias_out = p.act
    return (p.step is not None, p.step or 0.0, p.q_min, p.q_max,
            p.weight_codes, p.stride, p.padding, p.scale, p.shift, bias_in,
            weight, bias_out, pack_groups, pack_bias)


def quantized_stem_ref(
        x: Tensor,
        params: QuantizedStemParams,
        pack_groups: int = 1,
        pack_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Pure-PyTorch :func:`quantized_stem`: the codes (or the float input),
    their convolution summed tap by tap in the kernels' order, the affine,
    then :func:`rprelu_pack_ref`."""
    p = params
    codes = x if p.step is None else (x /
                                      p.step).clamp(p.q_min, p.q_max).round()
    acc = _conv_in_tap_order(codes, p.weight_codes, p.stride, p.padding)
    out = acc * p.scale.view(1, -1, 1, 1) + p.shift.view(1, -1, 1, 1)
    return rprelu_pack_ref(out, p.act, pack_groups, pack_bias)


def _conv_in_tap_order(x: Tensor, weight: Tensor, stride: int,
                       padding: int) -> Tensor:
    """``F.conv2d(x, weight)`` summed from 0 over input channel, kernel row
    and kernel column in that order (a multiply and an add per tap)."""
    k = weight.shape[-1]
    xp = F.pad(x, (padding, ) * 4)
    oh = (xp.shape[-2] - k) // stride + 1
    ow = (xp.shape[-1] - k) // stride + 1
    acc = x.new_zeros(x.shape[0], weight.shape[0], oh, ow)
    for ci in range(x.shape[1]):
        for kh in range(k):
            for kw in range(k):
                tap = xp[:, ci:ci + 1, kh:kh + stride * (oh - 1) + 1:stride,
                         kw:kw + stride * (ow - 1) + 1:stride]
                acc = acc + tap * weight[:, ci, kh, kw].view(1, -1, 1, 1)
    return acc
