"""The conventions a NAS-BNN backbone's weights depend on, read from it.

See :mod:`nasbnn_mm.utils.conventions` for what they are and how
checkpoints store them.
"""
from typing import Any, Dict, MutableMapping

from nasbnn_mm.nas import SearchSpace
from nasbnn_mm.utils import CheckpointType
from nasbnn_mm.utils.conventions import (CONVENTION_NAMES,
                                         checkpoint_conventions,
                                         merge_conventions)
from ..backbones import BaseSubnet, SuperBNN

__all__ = ['model_conventions', 'apply_checkpoint_conventions']


def model_conventions(backbone: Any) -> Dict[str, Any]:
    """The conventions of a supernet or a static subnet backbone.

    Args:
        backbone (SuperBNN | BaseSubnet): The backbone.

    Returns:
        dict: ``weight_norm``, ``stem_quantize_input``, ``search_space``
        (dict) and, for a :class:`SuperBNN`, ``group_slicing`` and
        ``bi_transform`` (a static subnet has them folded into its
        weights).

    Raises:
        TypeError: For another kind of module.

    Example:
        >>> model_conventions(SuperBNN('nasbnn_digits'))['bi_transform']
        True
    """
    if isinstance(backbone, BaseSubnet):
        return dict(
            weight_norm=backbone.weight_norm,
            stem_quantize_input=backbone.stem_quantize_input,
            search_space=backbone.space.to_dict())
    if not isinstance(backbone, SuperBNN):
        raise TypeError(f'{type(backbone).__name__} is not a NAS-BNN '
                        'backbone (SuperBNN, NASBNN, PackedNASBNN)')
    conv = backbone.stages[0][0].conv1
    return dict(
        weight_norm=conv.weight_norm,
        stem_quantize_input=backbone.stem.conv.input_quantizer is not None,
        group_slicing=conv.group_slicing,
        bi_transform=conv.bi_transform,
        search_space=backbone.space.to_dict())


def apply_checkpoint_conventions(backbone_cfg: MutableMapping[str, Any],
                                 checkpoint: CheckpointType,
                                 where: str) -> Dict[str, Any]:
    """Set a supernet backbone config to its checkpoint's conventions.

    Names the config leaves out are taken from the checkpoint (e.g.
    ``weight_norm='official'`` for a converted official checkpoint); names
    it sets must agree with it. A checkpoint without stored conventions
    leaves the config as it is.

    Args:
        backbone_cfg (dict): ``model.backbone`` of a supernet config
            (changed in place).
        checkpoint (str | dict): The supernet checkpoint.
        where (str): The checkpoint, for messages.

    Returns:
        dict: The checkpoint's conventions ({} for an old checkpoint).

    Raises:
        UserError: One line naming a contradiction and both values.
    """
    stored = checkpoint_conventions(checkpoint, 'supernet checkpoint')
    configured = {
        name: backbone_cfg[name]
        for name in CONVENTION_NAMES if name in backbone_cfg
    }
    merged = merge_conventions(
        configured, stored, where, same=dict(search_space=_same_space))
    merged.pop('search_space', None)
    backbone_cfg.update(merged)
    return stored


def _same_space(configured: Any, stored: Any) -> bool:
    """Whether two search spaces (names, files or dicts) are one."""
    return SearchSpace.from_config(configured).to_dict() == \
        SearchSpace.from_config(stored).to_dict()
