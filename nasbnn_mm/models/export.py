"""Turn supernet weights into static subnets (NAS-BNN pipeline 1).

NAS-BNN (https://arxiv.org/abs/2408.15484, sec. 3.4) deploys a searched
subnet with the weights it inherits from the supernet (pipeline 1) and
optionally fine-tunes it (pipeline 2). Both start here:

- :func:`export_subnet` slices a trained :class:`SandwichSupernet` into a
  static :class:`NASBNN` backbone and an ``nn.Linear`` classifier;
- :func:`subnet_checkpoint` packs them as an MMPretrain ``ImageClassifier``
  checkpoint (``backbone.*``, ``head.fc.*``) that
  ``torch.load(weights_only=True)`` accepts;
- :func:`load_supernet_weights` fills a :class:`NASBNN` directly from a
  supernet checkpoint, through the same export path (e.g. a detector
  backbone, ``NASBNN(supernet_checkpoint=...)``).
"""
import io
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.fileio import get as get_bytes
from mmengine.logging import print_log
from torch import Tensor

from nasbnn_mm.nas import ArchSpec, count_arch_ops
from .algorithms.sandwich_supernet import SandwichSupernet
from .backbones.nasbnn import NASBNN
from .backbones.super_bnn import SuperBNN

__all__ = [
    'export_subnet', 'subnet_checkpoint', 'read_checkpoint',
    'supernet_state_dict', 'load_supernet_weights'
]

ArchType = Union[str, dict, ArchSpec]
CheckpointType = Union[str, Mapping[str, Any]]

# How many shape mismatches an error lists before '...'.
_MAX_LISTED = 5


def export_subnet(supernet: SandwichSupernet,
                  arch: ArchType) -> Tuple[NASBNN, nn.Linear]:
    """Export one subnet of a supernet classifier as static modules.

    Args:
        supernet (SandwichSupernet): The trained supernet.
        arch (str | dict | ArchSpec): The subnet (preset, file or dict).

    Returns:
        tuple[NASBNN, nn.Linear]: The backbone (``SuperBNN.to_static``) and
        the classifier over the last stage's width, computing the same
        logits as ``supernet.logits(x, arch)`` in eval mode (after global
        average pooling). BN statistics are the supernet's: recalibrate
        the backbone before evaluating it.

    Example:
        >>> supernet = SandwichSupernet(
        ...     dict(type='SuperBNN', search_space='nasbnn_digits')).eval()
        >>> backbone, fc = export_subnet(supernet, supernet.smallest)
        >>> fc(backbone(torch.randn(2, 3, 32, 32))[-1].mean((2, 3))).shape
        torch.Size([2, 10])
    """
    arch = supernet.backbone.resolve_arch(arch)
    backbone = supernet.backbone.to_static(arch)
    fc = supernet.head.fc.to_static(arch.stages[-1][-1].channels)
    return backbone, fc


def subnet_checkpoint(backbone: NASBNN,
                      fc: Optional[nn.Linear] = None,
                      meta: Optional[Dict[str, Any]] = None) -> dict:
    """Pack a static subnet as an MMPretrain ``ImageClassifier`` checkpoint.

    Args:
        backbone (NASBNN): The backbone; keys ``backbone.*``.
        fc (nn.Linear, optional): The classifier; keys ``head.fc.*`` (a
            ``LinearClsHead``). Defaults to None (backbone only).
        meta (dict, optional): Extra plain-Python entries of ``meta``.

    Returns:
        dict: ``{'state_dict': ..., 'meta': ...}`` with CPU tensors and
        primitives only (``torch.load(weights_only=True)`` reads it).
        ``meta`` holds ``arch`` (spec dict), ``search_space`` (dict),
        ``weight_norm`` and ``stem_quantize_input`` (the options a
        :class:`NASBNN` needs to run these weights), ``ops_m`` (OPs in
        millions with the classifier of the space), ``out_channels`` and
        ``num_classes`` (None without ``fc``).
    """
    state = OrderedDict()
    for prefix, module in (('backbone.', backbone), ('head.fc.', fc)):
        if module is not None:
            for key, value in module.state_dict().items():
                state[prefix + key] = value.detach().cpu()
    info = dict(
        arch=backbone.arch.to_dict(),
        search_space=backbone.space.to_dict(),
        weight_norm=backbone.weight_norm,
        stem_quantize_input=backbone.stem_quantize_input,
        ops_m=count_arch_ops(backbone.arch, backbone.space).ops / 1e6,
        out_channels=list(backbone.out_channels),
        num_classes=None if fc is None else fc.out_features)
    info.update(meta or {})
    return dict(state_dict=state, meta=info)


def read_checkpoint(checkpoint: CheckpointType) -> Mapping[str, Any]:
    """Read a checkpoint (local path or any mmengine file backend) with
    ``torch.load(weights_only=True)`` onto the CPU; a dict passes through.
    """
    if isinstance(checkpoint, Mapping):
        return checkpoint
    return torch.load(
        io.BytesIO(get_bytes(checkpoint)),
        map_location='cpu',
        weights_only=True)


def supernet_state_dict(
        checkpoint: CheckpointType) -> Tuple[Dict[str, Tensor], List[str]]:
    """The :class:`SuperBNN` state dict inside a supernet checkpoint.

    Args:
        checkpoint (str | dict): A path, a checkpoint dict (with or without
            ``state_dict``) or a state dict; keys of a
            :class:`SandwichSupernet` (``backbone.*``, ``head.*``) or of a
            :class:`SuperBNN`.

    Returns:
        tuple[dict, list[str]]: The backbone's entries without the
        ``backbone.`` prefix, and the keys left out (the head...).
    """
    ckpt = read_checkpoint(checkpoint)
    state = ckpt.get('state_dict', ckpt)
    if not any(key.startswith('backbone.') for key in state):
        return dict(state), []
    backbone = {
        key[len('backbone.'):]: value
        for key, value in state.items() if key.startswith('backbone.')
    }
    return backbone, [k for k in state if not k.startswith('backbone.')]


@torch.no_grad()
def load_supernet_weights(
        model: NASBNN,
        checkpoint: CheckpointType,
        group_slicing: str = 'cyclic') -> Dict[str, List[str]]:
    """Fill ``model`` with its subnet's weights from a supernet checkpoint.

    Builds the :class:`SuperBNN` of ``model.space`` (with the checkpoint's
    Bi-Transformations, if it has them), loads the checkpoint into it and
    loads ``supernet.to_static(model.arch)`` into ``model``: the weights
    are sliced exactly as in the supernet's forward. Missing and unexpected
    keys (of the supernet) are logged, not fatal; shapes must match.

    Args:
        model (NASBNN): The static backbone to fill (in place).
        checkpoint (str | dict): A supernet checkpoint, see
            :func:`supernet_state_dict`.
        group_slicing (str): How that supernet slices grouped convs
            ('cyclic' or 'prefix'). Defaults to 'cyclic'.

    Returns:
        dict[str, list[str]]: ``missing``, ``unexpected`` (supernet keys)
        and ``ignored`` (non-backbone keys of the checkpoint).

    Raises:
        ValueError: If a tensor's shape differs from the supernet of
            ``model.space``, naming the key and both shapes, e.g.
            ``stages.1.0.conv1.weight: checkpoint (48, 48, 5, 5) vs model
            (64, 64, 5, 5)``.
    """
    where = checkpoint if isinstance(checkpoint, str) else 'checkpoint'
    state, ignored = supernet_state_dict(checkpoint)
    supernet = SuperBNN(
        model.space.to_dict(),
        arch=model.arch,
        weight_norm=model.weight_norm,
        bi_transform=any('.bi_transforms.' in key for key in state),
        stem_quantize_input=model.stem_quantize_input,
        group_slicing=group_slicing)
    expected = supernet.state_dict()
    mismatched = [
        f'{key}: checkpoint {tuple(value.shape)} vs model '
        f'{tuple(expected[key].shape)}' for key, value in state.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if mismatched:
        listed = '; '.join(mismatched[:_MAX_LISTED])
        more = len(mismatched) - _MAX_LISTED
        listed += f'; ... ({more} more)' if more > 0 else ''
        raise ValueError(
            f'{where}: not a supernet of the search space of this NASBNN '
            f'(arch {model.arch.to_dict()}): {listed}')
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
