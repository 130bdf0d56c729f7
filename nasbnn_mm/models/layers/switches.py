"""Switches between binary and full-precision weights and activations.

NAS-BNN's Bi-Teacher (https://arxiv.org/abs/2408.15484, sec. 3.3.1) runs the
largest subnet with full-precision weights and binary activations (FWBA);
the ablations also use BWBA and FWFA. The switches are plain attributes:

- ``binary_weights`` (bool) on every binary convolution (any module that
  has this attribute, e.g. :class:`BinaryConv2d`,
  :class:`DynamicBinaryConv2d`);
- ``binary`` (bool) on every :class:`RSign` (including the input sign inside
  a :class:`BinaryConv2d`); ``False`` keeps the learned shift and skips the
  sign.
"""
from contextlib import contextmanager
from typing import Iterator

import torch.nn as nn

from .activations import RSign

__all__ = ['set_binarization', 'binarization']


def set_binarization(module: nn.Module, weights: bool,
                     activations: bool) -> None:
    """Set binary (True) or full-precision (False) weights and activations.

    Args:
        module (nn.Module): Model; every submodule (itself included) is set.
        weights (bool): Value for every ``binary_weights`` attribute.
        activations (bool): Value for every ``RSign.binary``.

    Example:
        >>> from nasbnn_mm.models.layers import BinaryConv2d
        >>> conv = BinaryConv2d(4, 4, 3)
        >>> set_binarization(conv, weights=False, activations=True)  # FWBA
        >>> conv.binary_weights, conv.input_sign.binary
        (False, True)
    """
    for m in module.modules():
        if hasattr(m, 'binary_weights'):
            m.binary_weights = weights
        if isinstance(m, RSign):
            m.binary = activations


@contextmanager
def binarization(module: nn.Module, weights: bool,
                 activations: bool) -> Iterator[None]:
    """Context manager form of :func:`set_binarization`.

    Every switch gets its previous value back on exit, also on error, e.g.
    to run the Bi-Teacher (FWBA) forward inside a BWBA training step.

    Args:
        module (nn.Module): Model.
        weights (bool): ``binary_weights`` inside the context.
        activations (bool): ``RSign.binary`` inside the context.

    Example:
        >>> from nasbnn_mm.models.layers import BinaryConv2d
        >>> conv = BinaryConv2d(4, 4, 3)
        >>> with binarization(conv, weights=False, activations=False):
        ...     conv.binary_weights
        False
        >>> conv.binary_weights
        True
    """
    saved = [(m, m.binary_weights) for m in module.modules()
             if hasattr(m, 'binary_weights')]
    saved_act = [(m, m.binary) for m in module.modules()
                 if isinstance(m, RSign)]
    set_binarization(module, weights, activations)
    try:
        yield
    finally:
        for m, value in saved:
            m.binary_weights = value
        for m, value in saved_act:
            m.binary = value
