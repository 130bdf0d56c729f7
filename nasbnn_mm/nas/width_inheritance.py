"""Weight inheritance of the width search: the leading channels.

"Searching for Accurate Binary Neural Architectures" (Shen et al., 2019,
https://arxiv.org/abs/1909.07378), sec. 3.1 (Initialization): every
candidate starts from the network trained at uniform 4x width by
"intercepting the first corresponding channels". The width search problem,
``InheritLeadingChannelsHook`` and the width backbones' ``inherit_from``
use this one rule.
"""
from typing import Dict, Mapping

import torch.nn as nn
from torch import Tensor

__all__ = ['inherit_leading_channels']


def inherit_leading_channels(model: nn.Module,
                             wide_state_dict: Mapping[str, Tensor]) -> None:
    """Load the leading slice of every tensor of a wider network.

    Every entry of ``model.state_dict()`` takes ``wide[:d0, :d1, ...]`` of
    the same key, its own shape. Channels are the leading dimensions of
    convolution, BatchNorm and linear tensors, and a flattened (C, H, W)
    feature keeps channel ``c`` in columns ``[c * H * W, (c + 1) * H * W)``,
    so a prefix of columns is a prefix of channels too.

    Args:
        model (nn.Module): The candidate, narrower than or as wide as the
            wide network in every layer.
        wide_state_dict (Mapping[str, Tensor]): State dict of the wide
            network, same keys as ``model.state_dict()``.

    Raises:
        ValueError: If a key is missing, or a tensor has another number of
            dimensions or is narrower than the candidate's.

    Example:
        >>> wide, narrow = nn.Linear(4, 3), nn.Linear(2, 1)
        >>> inherit_leading_channels(narrow, wide.state_dict())
        >>> bool((narrow.weight == wide.weight[:1, :2]).all())
        True
    """
    own = model.state_dict()
    sliced: Dict[str, Tensor] = {}
    for key, target in own.items():
        if key not in wide_state_dict:
            raise ValueError(f'wide_state_dict: missing key {key!r}')
        source = wide_state_dict[key]
        if source.dim() != target.dim() or any(
                s < t for s, t in zip(source.shape, target.shape)):
            raise ValueError(
                f'wide_state_dict[{key!r}]: shape {tuple(source.shape)} '
                f'cannot be sliced to {tuple(target.shape)}')
        sliced[key] = source[tuple(slice(0, t) for t in target.shape)]
    model.load_state_dict(sliced)
