"""The contract every dynamic (sliceable) op of the supernet follows.

A dynamic op is a static op, a rule that slices its shared weights for one
setting, and :meth:`DynamicMixin.to_static`, which exports one setting as
the static op (the pattern of MMRazor's dynamic ops). Settings are named in
one vocabulary across the package:

- ``in_channels``, ``out_channels``, ``kernel_size``, ``groups``:
  convolutions and the supernet's blocks;
- ``channels``: per-channel ops that keep the width (BN, RSign, RPReLU);
- ``in_features``: the classifier.
"""
from abc import ABCMeta, abstractmethod
from typing import Dict

import torch
import torch.nn as nn

__all__ = ['DynamicMixin']


class DynamicMixin(metaclass=ABCMeta):
    """``to_static(**choice)``: one setting of a dynamic op as a static op.

    Subclasses (``nn.Module`` s) name their choices in
    :meth:`largest_choice`, the setting their ``forward`` runs by default,
    and build the static op in :meth:`_to_static`, which receives every
    choice by name. :meth:`to_static` checks the names, fills the missing
    ones from :meth:`largest_choice` and sets the static op's train/eval
    mode to this op's.

    Example:
        >>> from nasbnn_mm.models.layers import DynamicBatchNorm2d
        >>> bn = DynamicBatchNorm2d(8)
        >>> bn.largest_choice()
        {'channels': 8}
        >>> bn.to_static(channels=4).num_features
        4
    """

    @abstractmethod
    def largest_choice(self) -> Dict[str, int]:
        """dict[str, int]: Every choice of this op at its default: the
        largest widths and kernel, the fewest groups."""

    @abstractmethod
    def _to_static(self, **choice: int) -> nn.Module:
        """Build the static op of one full setting (no gradients)."""

    @torch.no_grad()
    def to_static(self, **choice: int) -> nn.Module:
        """Export one setting as the static op.

        Args:
            **choice (int): Some keys of :meth:`largest_choice`; the others
                take its values.

        Returns:
            nn.Module: The static op: copies of the sliced parameters and
            buffers, on this op's device, in its train/eval mode, with the
            same output as this op at that setting.

        Raises:
            ValueError: If a choice name is unknown or a value is out of
                range.
        """
        defaults = self.largest_choice()
        unknown = sorted(set(choice) - set(defaults))
        if unknown:
            raise ValueError(
                f'{type(self).__name__}.to_static: unknown choice '
                f'{unknown[0]!r}; allowed: {", ".join(defaults)}')
        static = self._to_static(**dict(defaults, **choice))
        return static.train(self.training)
