"""Turn a trained supernet into a static subnet (NAS-BNN pipeline 1).

NAS-BNN (https://arxiv.org/abs/2408.15484, sec. 3.4) deploys a searched
subnet with the weights it inherits from the supernet (pipeline 1) and
optionally fine-tunes it (pipeline 2). Both start here:

- :func:`export_subnet` slices a supernet backbone and its head into a
  static :class:`NASBNN` backbone and an ``nn.Linear`` classifier;
- :func:`subnet_checkpoint` packs them as an MMPretrain ``ImageClassifier``
  checkpoint (``backbone.*``, ``head.fc.*``) that
  ``torch.load(weights_only=True)`` accepts.
"""
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import torch.nn as nn

from nasbnn_mm.nas import ArchType, count_arch_ops
from nasbnn_mm.utils.conventions import add_conventions
from ..backbones import NASBNN, SuperBNN
from .conventions import model_conventions
from .head import SupernetHead

__all__ = ['export_subnet', 'subnet_checkpoint']


def export_subnet(backbone: SuperBNN, head: SupernetHead,
                  arch: ArchType) -> Tuple[NASBNN, nn.Linear]:
    """Export one subnet of a supernet classifier as static modules.

    Args:
        backbone (SuperBNN): The trained supernet backbone.
        head (SupernetHead): Its classifier head.
        arch (str | dict | ArchSpec): The subnet (see
            :func:`~nasbnn_mm.models.resolve_arch`).

    Returns:
        tuple[NASBNN, nn.Linear]: The backbone (``SuperBNN.to_static``) and
        the classifier over the last stage's width, computing the same
        logits as ``head(backbone(x, arch)[-1])`` in eval mode (after global
        average pooling). BN statistics are the supernet's: recalibrate
        the backbone before evaluating it.

    Example:
        >>> import torch
        >>> supernet = SuperBNN('nasbnn_digits').eval()
        >>> head = SupernetHead(128, 10)
        >>> static, fc = export_subnet(supernet, head, 'smallest')
        >>> fc(static(torch.randn(2, 3, 32, 32))[-1].mean((2, 3))).shape
        torch.Size([2, 10])
    """
    arch = backbone.resolve_arch(arch)
    static = backbone.to_static(arch)
    fc = head.fc.to_static(in_features=arch.stages[-1][-1].channels)
    return static, fc


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
        millions with the classifier of the space), ``out_channels``,
        ``num_classes`` (None without ``fc``) and ``nasbnn_conventions``
        (:func:`model_conventions`).
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
    return dict(
        state_dict=state,
        meta=add_conventions(info, model_conventions(backbone)))
