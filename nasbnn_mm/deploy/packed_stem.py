"""The 8-bit stem of a packed NAS-BNN folded for :func:`ops.quantized_stem`.

The float stem (:class:`~nasbnn_mm.models.backbones.base_nasbnn.NASBNNStem`)
fake-quantizes its input and weight with LSQ, convolves, then applies BN
and RPReLU. Folded, the convolution runs on the integer codes (exact) and
``step_x * step_w`` joins the BN in one per-channel affine, computed in
float64 and rounded once, as :class:`PackedBinaryConv2d` folds ``alpha``
and its BN; without input quantization (the official code's stem) the
float input meets the weight codes and ``step_w`` joins the BN. The state
dict stays the float stem's.
"""
import torch
from torch import Tensor

from nasbnn_mm.models.backbones.base_nasbnn import NASBNNStem
from nasbnn_mm.ops import QuantizedStemParams

__all__ = ['fold_quantized_stem']


@torch.no_grad()
def fold_quantized_stem(stem: NASBNNStem, x: Tensor) -> QuantizedStemParams:
    """Fold ``stem`` (eval semantics: BN running statistics) for input ``x``.

    Args:
        stem (NASBNNStem): The float stem.
        x (Tensor): (N, C_img, H, W) images: LSQ's effective input step
            depends on ``x[0].numel()``; an uninitialised quantizer is
            initialised from ``x`` as the float stem would.

    Returns:
        QuantizedStemParams: ``step`` None where the input is not quantized
        (e.g. a stem converted from the official code).
    """
    conv, bn, act = stem.conv, stem.bn, stem.act
    quant_x, quant_w = conv.input_quantizer, conv.weight_quantizer
    step_x = None
    if quant_x is not None:
        quant_x.maybe_init(x)
        step_x = quant_x.effective_step(x)
    quant_w.maybe_init(conv.weight)
    step_w = quant_w.effective_step(conv.weight)
    codes = (conv.weight / step_w).clamp(quant_w.q_min, quant_w.q_max).round()
    a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * a
    if conv.bias is not None:
        shift = shift + a * conv.bias.double()
    scale = step_w.flatten().double() * a
    if step_x is not None:
        scale = step_x.double() * scale
    return QuantizedStemParams(None if step_x is None else float(step_x),
                               quant_w.q_min, quant_w.q_max,
                               codes.float().contiguous(), conv.stride[0],
                               conv.padding[0], scale.float(), shift.float(),
                               (act.bias_in, act.weight, act.bias_out))
