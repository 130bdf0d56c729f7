"""Run a binary detector's backbone, neck and heads on packed kernels.

:func:`pack_detector` replaces, in place, every binary part of a detector
by its bit-packed form: a :class:`~nasbnn_mm.models.NASBNN` backbone by
:class:`PackedNASBNN`, the neck's and heads' binary blocks by
:class:`PackedBinaryConvBlock` / :class:`PackedBinaryLinearBlock`. Layers
that are not binary (the 8-bit stem, the FP predictors, RoIAlign) stay.
:class:`PackedInferenceHook` does it when a test starts, so a config turns
packed inference on::

    custom_imports = dict(imports=[..., 'nasbnn_mm.deploy.packed_detector'])
    custom_hooks = [..., dict(type='nasbnn_mm.PackedInferenceHook')]

Importing this module imports MMDetection.
"""
from typing import Dict

import torch
import torch.nn as nn
from mmengine.hooks import Hook

from nasbnn_mm.models.backbones import NASBNN
from nasbnn_mm.models.detection import BinaryConvBlock, BinaryLinearBlock
from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import UserError, unwrap_model
from .packed_det_layers import PackedBinaryConvBlock, PackedBinaryLinearBlock
from .packed_nasbnn import pack_nasbnn

__all__ = ['pack_detector', 'PackedInferenceHook']

_PACKERS = (
    (NASBNN, pack_nasbnn),
    (BinaryConvBlock, PackedBinaryConvBlock),
    (BinaryLinearBlock, PackedBinaryLinearBlock),
)


@torch.no_grad()
def pack_detector(model: nn.Module) -> Dict[str, int]:
    """Replace the binary parts of ``model`` by packed ones, in place.

    The model is put in eval mode first (BN running statistics are folded).

    Args:
        model (nn.Module): A detector (or any module) holding ``NASBNN``
            backbones and binary blocks.

    Returns:
        dict: How many modules of each packed type were put in, by class
        name.

    Raises:
        ValueError: If a binary part cannot be packed (e.g. its weights or
            activations were set to full precision).
    """
    model.eval()
    counts: Dict[str, int] = {}

    def visit(parent: nn.Module, prefix: str) -> None:
        for name, child in parent.named_children():
            packer = next((p for t, p in _PACKERS if isinstance(child, t)),
                          None)
            if packer is None:
                visit(child, f'{prefix}{name}.')
                continue
            try:
                packed = packer(child)
            except ValueError as err:
                raise ValueError(f'{prefix}{name}: {err}') from err
            setattr(parent, name, packed)
            kind = type(packed).__name__
            counts[kind] = counts.get(kind, 0) + 1

    visit(model, '')
    return counts


@HOOKS.register_module()
class PackedInferenceHook(Hook):
    """Pack the binary parts of the model when a test starts.

    Runs :func:`pack_detector` on the (unwrapped) model in ``before_test``,
    i.e. after the checkpoint is loaded; validation during training keeps
    the float model. The packed kernels run on CPU.
    """

    priority = 'LOWEST'

    def before_test(self, runner) -> None:
        model = unwrap_model(runner.model)
        device = next(model.parameters()).device
        if device.type != 'cpu':
            raise UserError(f'PackedInferenceHook: the model is on {device}; '
                            'the packed kernels run on CPU only (test on CPU '
                            'or remove the hook)')
        try:
            counts = pack_detector(model)
        except ValueError as err:
            raise UserError(f'PackedInferenceHook: {err}') from err
        if not counts:
            raise UserError('PackedInferenceHook: the model has no binary '
                            'NASBNN backbone or binary blocks to pack')
        runner.logger.info('PackedInferenceHook: packed ' +
                           ', '.join(f'{n} {kind}'
                                     for kind, n in sorted(counts.items())))
