"""Convert the official NAS-BNN supernet checkpoint to ``SandwichSupernet``.

The official code (github.com/VDIGPKU/NAS-BNN, ``models/superbnn.py``) keys
its supernet as ``features.<stage>.<block>.<module>``, with the stem as stage
0, and ``fc``. This module only maps names and shapes; the layer semantics
it relies on (checked against the official code):

* stem ``conv`` is an 8-bit weight-quantized conv whose per-channel
  ``w_scale`` is our LSQ weight step; the official stem does not quantize
  its input, so build the supernet with ``stem_quantize_input=False``;
* ``move*`` learnable biases are the RSign/RPReLU shifts, ``prelu*`` the
  PReLU slopes;
* ``fp2bin_<k>`` is the Bi-Transformation applied as ``w @ M.T``, i.e. our
  ``theta = M.T``; ``matrix_<K>to<k>`` are the kernel transformations,
  applied the same way as ours;
* grouped convs slice the shared weight with the 'cyclic' rule
  (``group_slicing='cyclic'``, our default);
* ``scaling_factor`` buffers and the ``biggest_cand``/``smallest_cand``
  buffers are recomputed or unused and are dropped.

These conventions are written into the converted checkpoint
(:func:`official_conventions`, ``meta['nasbnn_conventions']``), so every
loader builds the supernet the weights belong to.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Tuple

import torch
from torch import Tensor

from nasbnn_mm.nas import SearchSpace
from nasbnn_mm.utils.conventions import OFFICIAL_CONVENTIONS

__all__ = ['convert_official_state_dict', 'official_conventions']

# official block module -> ours, for stage >= 1 (separable blocks)
_BLOCK_MODULES = {
    'move11.bias': 'sign1.bias',
    'binary_conv.weight': 'conv1.weight',
    'bn1.bn': 'bn1',
    'move12.bias': 'act1.bias_in',
    'prelu1.prelu.weight': 'act1.weight',
    'move13.bias': 'act1.bias_out',
    'move21.bias': 'sign2.bias',
    'binary_conv1x1.weight': 'conv2.weight',
    'bn2.bn': 'bn2',
    'move22.bias': 'act2.bias_in',
    'prelu2.prelu.weight': 'act2.weight',
    'move23.bias': 'act2.bias_out',
}
_STEM_MODULES = {
    'conv.weight': 'conv.weight',
    'conv.w_scale': 'conv.weight_quantizer.step',
    'conv.w_init_state': 'conv.weight_quantizer.initialized',
    'bn.bn': 'bn',
    'move1.bias': 'act.bias_in',
    'relu.prelu.weight': 'act.weight',
    'move2.bias': 'act.bias_out',
}
_DROPPED = ('scaling_factor', 'biggest_cand', 'smallest_cand')
_KEY = re.compile(r'features\.(\d+)\.(\d+)\.(.+)')


def _map_module(rest: str, table: Dict[str, str]) -> str:
    for src, dst in table.items():
        if rest == src or rest.startswith(src + '.'):
            return dst + rest[len(src):]
    raise KeyError(rest)


def _convert_value(src: str, dst: str, value: Tensor) -> Tensor:
    if src.endswith(
        ('move11.bias', 'move12.bias', 'move13.bias', 'move21.bias',
         'move22.bias', 'move23.bias', 'move1.bias', 'move2.bias')):
        return value.reshape(-1)  # (1, C, 1, 1) -> (C, )
    if dst.endswith('weight_quantizer.initialized'):
        return (value.reshape(-1)[0] > 0).to(torch.uint8).reshape(())
    if '.bi_transforms.' in dst:
        return value.t().contiguous()
    return value


def _convert_key(key: str) -> Tuple[str, bool]:
    """Return our key for an official one, or ('', False) to drop it."""
    if key.startswith('fc.'):
        return 'head.' + key, True
    if key in _DROPPED:
        return '', False
    match = _KEY.fullmatch(key)
    if match is None:
        raise KeyError(key)
    stage, block, rest = int(match[1]), match[2], match[3]
    if any(rest.endswith(d) or rest == d for d in _DROPPED):
        return '', False
    if stage == 0:
        return 'backbone.stem.' + _map_module(rest, _STEM_MODULES), True
    prefix = f'backbone.stages.{stage - 1}.{block}.'
    kernel = re.fullmatch(r'binary_conv(1x1)?\.matrix_(\d+)to(\d+)', rest)
    if kernel:
        conv = 'conv2' if kernel[1] else 'conv1'
        return (f'{prefix}{conv}.kernel_transforms.'
                f'{kernel[2]}to{kernel[3]}.matrix'), True
    bi = re.fullmatch(r'binary_conv(1x1)?\.fp2bin_(\d+)', rest)
    if bi:
        conv = 'conv2' if bi[1] else 'conv1'
        return f'{prefix}{conv}.bi_transforms.{bi[2]}.theta', True
    return prefix + _map_module(rest, _BLOCK_MODULES), True


def convert_official_state_dict(
        state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Map an official SuperBNN state dict to ``SandwichSupernet`` keys.

    Args:
        state_dict (dict): The official ``model.state_dict()`` (a leading
            ``module.`` from DistributedDataParallel is stripped).

    Returns:
        OrderedDict: Our keys (``backbone.*``, ``head.fc.*``) and tensors.

    Raises:
        KeyError: One line naming an official key that has no counterpart.
    """
    converted = OrderedDict()
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        try:
            new_key, keep = _convert_key(key)
        except KeyError:
            raise KeyError(f'official key {key!r} has no counterpart in '
                           'SandwichSupernet') from None
        if keep:
            converted[new_key] = _convert_value(key, new_key, value)
    return converted


def official_conventions(search_space: str = 'nasbnn_in1k') -> Dict[str, Any]:
    """The conventions of a converted official supernet checkpoint.

    Args:
        search_space (str | dict): Its space. Defaults to 'nasbnn_in1k'
            (the released supernet's).

    Returns:
        dict: :data:`~nasbnn_mm.utils.conventions.OFFICIAL_CONVENTIONS`
        (``weight_norm='official'``, ``stem_quantize_input=False``,
        ``group_slicing='cyclic'``, ``bi_transform='max_kernel'``) and the
        ``search_space`` dict.
    """
    return dict(
        OFFICIAL_CONVENTIONS,
        search_space=SearchSpace.from_config(search_space).to_dict())
