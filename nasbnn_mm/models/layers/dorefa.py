"""1-bit DoReFa-Net binarization, as used by the width search of binary nets.

"Searching for Accurate Binary Neural Architectures" (Shen et al., 2019,
https://arxiv.org/abs/1909.07378), eq. (1), follows DoReFa-Net
(https://arxiv.org/abs/1606.06160) with 1-bit weights and activations::

    w_b = sign(w) * E(|w|)
    x_b = round(clip(x, 0, 1))

``E(|w|)`` is one floating-point scalar per layer, the mean of ``|w|`` over
the whole weight tensor: the paper approximates ``w`` "by binary weights and
a floating-point scalar", and the DoReFa-Net reference implementation
(tensorpack ``dorefa.py``, ``bitW == 1``) takes ``reduce_mean(abs(w))`` over
the tensor, not per output channel.

Gradients are straight-through (Bengio et al., 2013):

- weights: ``dL/dw = dL/dw_b``; the scalar ``E(|w|)`` is treated as a
  constant (``stop_gradient`` in the reference implementation);
- activations: the rounding passes gradients through unchanged while the clip
  keeps its own gradient, so ``dL/dx = dL/dx_b`` for ``0 <= x <= 1`` and
  ``0`` elsewhere.
"""
import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    'dorefa_binarize_weight', 'dorefa_binarize_activation', 'DoReFaConv2d',
    'DoReFaActivation'
]


def dorefa_binarize_weight(weight: Tensor) -> Tensor:
    """Binarize weights to ``{-E(|w|), +E(|w|)}`` with a per-layer scale.

    ``sign(0)`` is taken as ``+1`` so that every weight is binary (unlike
    :func:`torch.sign`, which maps 0 to 0).

    Args:
        weight (Tensor): Weights of one layer, any shape, e.g.
            (C_out, C_in, K, K).

    Returns:
        Tensor: Same shape as ``weight``, every entry ``+-E(|w|)``; its
        gradient with respect to ``weight`` is the identity.
    """
    detached = weight.detach()
    scale = detached.abs().mean()
    binary = torch.where(detached >= 0, scale, -scale)
    # Straight-through: ``weight - detached`` is exactly 0 but carries the
    # identity gradient, so the value stays exactly binary.
    return binary + (weight - detached)


def dorefa_binarize_activation(x: Tensor) -> Tensor:
    """Binarize activations to ``{0, 1}``: ``round(clip(x, 0, 1))``.

    Rounding is :func:`torch.round` (half to even, so ``0.5`` maps to 0, as
    ``tf.round`` in the reference implementation).

    Args:
        x (Tensor): Any shape, e.g. (N, C, H, W).

    Returns:
        Tensor: Same shape as ``x``, values in ``{0, 1}``; its gradient is 1
        where ``0 <= x <= 1`` and 0 elsewhere.
    """
    detached = x.detach()
    binary = detached.clamp(0, 1).round()
    window = (detached >= 0) & (detached <= 1)
    # ``x - detached`` is exactly 0: exact binary values, gradient 1 inside
    # the clip window (bounds included) and 0 outside (also for +-inf).
    return binary + torch.where(window, x - detached, 0.)


class DoReFaActivation(nn.Module):
    """DoReFa 1-bit activation ``round(clip(x, 0, 1))``.

    It stands where a full-precision network has its ReLU, so it is both the
    non-linearity and the binarization of the next binary layer's input.

    Shape:
        - Input: (N, *), any shape.
        - Output: same shape as the input, values in ``{0, 1}``.

    Example:
        >>> m = DoReFaActivation()
        >>> m(torch.tensor([-0.3, 0.2, 0.7, 1.5])).tolist()
        [0.0, 0.0, 1.0, 1.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        """Binarize ``x``.

        Args:
            x (Tensor): (N, *).

        Returns:
            Tensor: (N, *), values in ``{0, 1}``.
        """
        return dorefa_binarize_activation(x)


class DoReFaConv2d(nn.Conv2d):
    """Convolution with DoReFa 1-bit weights ``sign(w) * E(|w|)``.

    Only the weights are binarized here; the input is expected to be binary
    already, i.e. the output of :class:`DoReFaActivation` (or of a max-pool
    of it), which is how the width-search backbones are wired. The layer
    counts as binary for OPs and memory (``ops_kind = 'bops'``). The
    constructor is that of :class:`torch.nn.Conv2d`.

    Shape:
        - Input: (N, C_in, H, W), values in ``{0, 1}``.
        - Output: (N, C_out, H_out, W_out).

    Example:
        >>> conv = DoReFaConv2d(8, 16, 3, padding=1, bias=False)
        >>> x = (torch.rand(2, 8, 6, 6) > 0.5).float()
        >>> conv(x).shape
        torch.Size([2, 16, 6, 6])
    """

    ops_kind = 'bops'

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` with the binarized weights.

        Args:
            x (Tensor): (N, C_in, H, W).

        Returns:
            Tensor: (N, C_out, H_out, W_out).
        """
        return self._conv_forward(x, dorefa_binarize_weight(self.weight),
                                  self.bias)
