"""Fill a static subnet backbone from a supernet checkpoint.

A NAS-BNN subnet (https://arxiv.org/abs/2408.15484, sec. 3.4) inherits its
weights from the supernet. :func:`load_supernet_weights` builds the
:class:`SuperBNN` of the subnet's space, loads the checkpoint into it and
loads ``SuperBNN.to_static(arch)`` into the subnet, so the weights are
sliced exactly as in the supernet's forward.

Static backbones reach it through their ``init_cfg``, as pretrained weights
do, without importing anything about the supernet::

    backbone=dict(type='nasbnn_mm.NASBNN', arch=..., search_space=...,
                  init_cfg=dict(type='SupernetInit', checkpoint='S.pth'))

:class:`SupernetInit` is an MMEngine weight initializer; it fills a
``NASBNN`` and, through its float-weight loading, a ``PackedNASBNN``.
"""
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import BaseInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import Tensor

from nasbnn_mm.utils import CheckpointError, CheckpointType, UserError
from nasbnn_mm.utils.checkpoint import (extract_state_dict, list_some,
                                        read_checkpoint, shape_mismatches)
from nasbnn_mm.utils.conventions import (SUPERNET_DEFAULTS,
                                         checkpoint_conventions,
                                         merge_conventions)
from ..backbones import BaseSubnet, SuperBNN
from ..layers.dynamic_binary_conv import GROUP_SLICINGS

__all__ = [
    'supernet_state_dict', 'supernet_conventions', 'load_supernet_weights',
    'SupernetInit'
]

_WHAT = 'supernet checkpoint'


def supernet_state_dict(
        checkpoint: CheckpointType) -> Tuple[Dict[str, Tensor], List[str]]:
    """The :class:`SuperBNN` state dict inside a supernet checkpoint.

    Args:
        checkpoint (str | dict): A path, a checkpoint dict (with or without
            ``state_dict``) or a state dict; keys of a
            ``SandwichSupernet`` (``backbone.*``, ``head.*``) or of a
            :class:`SuperBNN`.

    Returns:
        tuple[dict, list[str]]: The backbone's entries without the
        ``backbone.`` prefix, and the keys left out (the head...).

    Raises:
        CheckpointError: If the file cannot be read or holds no tensors.
    """
    ckpt = read_checkpoint(checkpoint, _WHAT)
    every = extract_state_dict(ckpt, what=_WHAT)
    backbone = extract_state_dict(ckpt, 'backbone.', _WHAT, bare_ok=True)
    if len(backbone) == len(every):
        return backbone, []
    return backbone, [k for k in every if not k.startswith('backbone.')]


def supernet_conventions(
        model: BaseSubnet,
        checkpoint: CheckpointType,
        state: Dict[str, Tensor],
        group_slicing: Optional[str] = None) -> Dict[str, Any]:
    """The conventions of the :class:`SuperBNN` that ``checkpoint`` holds.

    The checkpoint's stored conventions
    (:func:`~nasbnn_mm.utils.conventions.checkpoint_conventions`), checked
    against ``model``'s ``weight_norm`` and ``stem_quantize_input`` and a
    given ``group_slicing``. A checkpoint without them (older) keeps the
    model's values, ``group_slicing`` (default 'cyclic') and a
    Bi-Transformation per kernel size if it has any θ.

    Raises:
        UserError: One line naming a contradiction and both values.
    """
    where = checkpoint if isinstance(checkpoint, str) else _WHAT
    configured = dict(
        weight_norm=model.weight_norm,
        stem_quantize_input=model.stem_quantize_input)
    if group_slicing is not None:
        configured['group_slicing'] = group_slicing
    stored = checkpoint_conventions(checkpoint, _WHAT)
    stored.pop('search_space', None)
    merged = merge_conventions(configured, stored, where)
    merged.setdefault('group_slicing', SUPERNET_DEFAULTS['group_slicing'])
    merged.setdefault('bi_transform',
                      any('.bi_transforms.' in key for key in state))
    return merged


@torch.no_grad()
def load_supernet_weights(
        model: BaseSubnet,
        checkpoint: CheckpointType,
        group_slicing: Optional[str] = None) -> Dict[str, List[str]]:
    """Fill ``model`` with its subnet's weights from a supernet checkpoint.

    Builds the :class:`SuperBNN` of ``model.space`` with the checkpoint's
    conventions (:func:`supernet_conventions`), loads the checkpoint into
    it and loads ``supernet.to_static(model.arch)`` into ``model``: the
    weights are sliced exactly as in the supernet's forward. Missing and
    unexpected keys (of the supernet) are logged, not fatal; shapes must
    match.

    Args:
        model (BaseSubnet): The static backbone to fill (in place), e.g. a
            :class:`NASBNN` or a ``PackedNASBNN``.
        checkpoint (str | dict): A supernet checkpoint, see
            :func:`supernet_state_dict`.
        group_slicing (str, optional): How that supernet slices grouped
            convs ('cyclic' or 'prefix'). Defaults to the checkpoint's,
            else 'cyclic'.

    Returns:
        dict[str, list[str]]: ``missing``, ``unexpected`` (supernet keys)
        and ``ignored`` (non-backbone keys of the checkpoint).

    Raises:
        UserError: If ``model`` or ``group_slicing`` contradicts the
            checkpoint's conventions.
        CheckpointError: If a tensor's shape differs from the supernet of
            ``model.space``, naming the key and both shapes, e.g.
            ``stages.1.0.conv2.weight: checkpoint (28, 24, 1, 1) vs model
            (32, 24, 1, 1)``.
    """
    where = checkpoint if isinstance(checkpoint, str) else _WHAT
    state, ignored = supernet_state_dict(checkpoint)
    conventions = supernet_conventions(model, checkpoint, state, group_slicing)
    # NOTE: weight normalization is a forward option of the binary convs;
    # the sliced tensors do not depend on it.
    supernet = SuperBNN(model.space.to_dict(), arch=model.arch, **conventions)
    mismatched = shape_mismatches(supernet, state)
    if mismatched:
        raise CheckpointError(
            f'{where}: not a supernet of the search space of this '
            f'{type(model).__name__} (arch {model.arch.to_dict()}): '
            f'{list_some(mismatched)}')
    missing, unexpected = supernet.load_state_dict(state, strict=False)
    model.load_state_dict(supernet.to_static(model.arch).state_dict())
    report = dict(
        missing=list(missing), unexpected=list(unexpected), ignored=ignored)
    lines = [
        f'{len(state)} supernet tensors from {where} sliced to arch '
        f'{model.arch.to_dict()}'
    ]
    for kind, keys in report.items():
        if keys:
            lines.append(f'{kind} keys ({len(keys)}): {", ".join(keys)}')
    print_log('\n'.join(lines), logger='current')
    return report


@WEIGHT_INITIALIZERS.register_module(name='SupernetInit')
class SupernetInit(BaseInit):
    """Initialise a static subnet backbone from a supernet checkpoint.

    The initializer of ``init_cfg=dict(type='SupernetInit', checkpoint=...)``
    (registered in MMEngine's root registry, so every scope finds it):
    calls :func:`load_supernet_weights` on the backbone whose ``init_cfg``
    it is. BN statistics are the supernet's shared ones (not
    recalibrated).

    Args:
        checkpoint (str | dict): A supernet checkpoint of the backbone's
            search space (``SandwichSupernet`` or :class:`SuperBNN` keys).
        group_slicing (str, optional): ``group_slicing`` of that supernet
            (see :class:`SuperBNN`). Defaults to the checkpoint's
            conventions, else 'cyclic'.

    Example:
        >>> backbone = dict(
        ...     type='nasbnn_mm.NASBNN',
        ...     arch='A',
        ...     search_space='nasbnn_in1k',
        ...     init_cfg=dict(type='SupernetInit', checkpoint='supernet.pth'))
    """

    def __init__(self,
                 checkpoint: CheckpointType,
                 group_slicing: Optional[str] = None) -> None:
        super().__init__()
        if group_slicing not in GROUP_SLICINGS + (None, ):
            raise UserError(f'SupernetInit: group_slicing {group_slicing!r} '
                            f'not in {GROUP_SLICINGS}')
        self.checkpoint = checkpoint
        self.group_slicing = group_slicing

    def __call__(self, module: BaseSubnet) -> None:
        if not isinstance(module, BaseSubnet):
            raise UserError(
                f'SupernetInit: initialises a static subnet backbone '
                f'(NASBNN, PackedNASBNN), not a {type(module).__name__}')
        load_supernet_weights(module, self.checkpoint, self.group_slicing)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        source = self.checkpoint if isinstance(self.checkpoint,
                                               str) else 'a state dict'
        return f'{type(self).__name__}: sliced from {source}'
