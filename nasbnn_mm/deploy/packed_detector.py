"""Run a binary detector's backbone, neck and heads on packed kernels.

:func:`pack_detector` replaces, in place, every binary part of a detector
by its bit-packed form: a :class:`~nasbnn_mm.models.NASBNN` backbone by
:class:`PackedNASBNN`, the neck's and heads' binary blocks by
:class:`PackedBinaryConvBlock` / :class:`PackedBinaryLinearBlock`. Layers
that are not binary (the 8-bit stem, the FP predictors, RoIAlign) stay.
Feature maps stay in the kernels' channels_last memory from the backbone
through the neck, the RPN and the RoI extractors, whose MMCV average
``RoIAlign`` layers become :class:`ChannelsLastRoIAlign` (same outputs; an
extractor keeping another RoI layer gets contiguous NCHW maps, as MMCV's RoI
ops read raw NCHW memory).
:class:`PackedInferenceHook` does it when a test starts, so a config turns
packed inference on::

    custom_imports = dict(imports=[..., 'nasbnn_mm.deploy.packed_detector'])
    custom_hooks = [..., dict(type='nasbnn_mm.PackedInferenceHook')]

Importing this module imports MMDetection.
"""
from functools import partial
from typing import Dict, Tuple

import torch
import torch.nn as nn
from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor
from mmengine.hooks import Hook

from nasbnn_mm.models.backbones import NASBNN
from nasbnn_mm.models.detection import BinaryConvBlock, BinaryLinearBlock
from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import UserError, unwrap_model
from .packed_det_layers import (ChannelsLastRoIAlign, PackedBinaryConvBlock,
                                PackedBinaryLinearBlock)
from .packed_nasbnn import pack_nasbnn

__all__ = ['pack_detector', 'match_detections', 'PackedInferenceHook']

_PACKERS = (
    (NASBNN, partial(pack_nasbnn, channels_last_outputs=True)),
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
        name (RoIAlign layers are replaced only when a binary part was
        packed).

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
    if not counts:
        return counts
    for module in model.modules():
        if isinstance(module, BaseRoIExtractor):
            replaced = _channels_last_roi_layers(module)
            if replaced:
                counts['ChannelsLastRoIAlign'] = (
                    counts.get('ChannelsLastRoIAlign', 0) + replaced)
            if replaced < len(module.roi_layers):
                module.register_forward_pre_hook(_contiguous_feats)
    return counts


def _channels_last_roi_layers(extractor: BaseRoIExtractor) -> int:
    """Replace the extractor's MMCV average ``RoIAlign`` layers by
    :class:`ChannelsLastRoIAlign`; returns how many were replaced."""
    replaced = 0
    for i, layer in enumerate(extractor.roi_layers):
        if ChannelsLastRoIAlign.replaces(layer):
            extractor.roi_layers[i] = ChannelsLastRoIAlign.from_mmcv(layer)
            replaced += 1
    return replaced


def _contiguous_feats(module: nn.Module, args: Tuple) -> Tuple:
    """Forward pre-hook of a RoI extractor that keeps an MMCV RoI layer:
    contiguous (NCHW) feature maps, as MMCV's RoI ops read raw NCHW
    memory."""
    feats, *rest = args
    return (tuple(f.contiguous() for f in feats), *rest)


def match_detections(expected, result, box_tol: float = 1e-3) -> Dict:
    """Pair two detection sets one to one: same label, every box coordinate
    within ``box_tol`` px (in score order, so near-equal scores that sort
    differently still pair).

    Args:
        expected, result (InstanceData): ``bboxes`` (N, 4), ``labels`` (N, )
            and ``scores`` (N, ), e.g. ``pred_instances`` of a detector.
        box_tol (float): Largest coordinate difference of a pair, px.

    Returns:
        dict: ``detections`` (both counts), ``unmatched`` (detections of
        either set without a pair), ``max_box_diff_px`` and
        ``max_score_diff`` over the pairs, ``identical`` (no unmatched).
    """
    diff = (expected.bboxes[:, None] - result.bboxes[None]).abs().amax(2)
    ok = (diff <= box_tol) & (expected.labels[:, None] == result.labels[None])
    free = torch.ones(len(result), dtype=torch.bool)
    pairs = []
    for i in expected.scores.argsort(descending=True).tolist():
        candidates = (ok[i] & free).nonzero().flatten()
        if len(candidates):
            j = candidates[diff[i, candidates].argmin()].item()
            free[j] = False
            pairs.append((i, j))
    unmatched = len(expected) + len(result) - 2 * len(pairs)
    box_diff = [diff[i, j].item() for i, j in pairs]
    score_diff = [(expected.scores[i] - result.scores[j]).abs().item()
                  for i, j in pairs]
    return dict(
        detections=[len(expected), len(result)],
        unmatched=unmatched,
        max_box_diff_px=max(box_diff, default=0.),
        max_score_diff=max(score_diff, default=0.),
        identical=unmatched == 0)


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
