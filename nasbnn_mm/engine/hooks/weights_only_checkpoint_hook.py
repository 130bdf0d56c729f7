"""Make mmengine checkpoints loadable with ``torch.load(weights_only=True)``.

Under torch >= 2.6 ``torch.load`` refuses arbitrary pickled objects by
default, and mmengine 0.10.7 writes ``HistoryBuffer`` objects and numpy
scalars/arrays into its checkpoints, so ``--resume`` and ``load_from`` fail.
Allowing them with ``weights_only=False`` would make every checkpoint code
that runs at load time. Instead this hook rewrites the checkpoint before it is
saved into plain tensors and primitive containers, and restores the
``HistoryBuffer`` objects after loading so that resuming is unchanged.
"""
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from nasbnn_mm.registry import HOOKS

__all__ = ['WeightsOnlyCheckpointHook', 'to_weights_only', 'from_weights_only']

# A tag no mmengine key uses; marks an encoded ``HistoryBuffer``.
_BUFFER_TAG = '__nasbnn_mm_history_buffer__'


def to_weights_only(obj: Any) -> Any:
    """Return ``obj`` with only tensors and primitive containers inside.

    ``HistoryBuffer`` becomes a tagged dict, numpy arrays become tensors and
    numpy scalars become Python numbers. Dict subclasses (``OrderedDict``)
    and tuples keep their type.
    """
    if isinstance(obj, HistoryBuffer):
        log_history, count_history = obj.data
        return {
            _BUFFER_TAG: True,
            'log_history': torch.from_numpy(np.asarray(log_history)),
            'count_history': torch.from_numpy(np.asarray(count_history)),
            'max_length': int(obj.max_length),
        }
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        converted = type(obj)()
        for key, value in obj.items():
            converted[key] = to_weights_only(value)
        return converted
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_weights_only(value) for value in obj)
    return obj


def from_weights_only(obj: Any) -> Any:
    """Undo :func:`to_weights_only` for ``HistoryBuffer`` objects."""
    if isinstance(obj, dict):
        if obj.get(_BUFFER_TAG, False):
            return HistoryBuffer(obj['log_history'].numpy(),
                                 obj['count_history'].numpy(),
                                 obj['max_length'])
        converted = type(obj)()
        for key, value in obj.items():
            converted[key] = from_weights_only(value)
        return converted
    if isinstance(obj, list):
        return [from_weights_only(value) for value in obj]
    return obj


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Write checkpoints that ``torch.load(weights_only=True)`` accepts.

    Add it to every config that saves checkpoints::

        custom_hooks = [dict(type='nasbnn_mm.WeightsOnlyCheckpointHook')]

    It runs last among hooks (priority ``'LOWEST'``) so that it sees what
    every other hook added to the checkpoint.
    """

    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Rewrite ``checkpoint`` in place into plain tensors/primitives."""
        converted = to_weights_only(checkpoint)
        checkpoint.clear()
        checkpoint.update(converted)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the ``HistoryBuffer`` objects of the message hub."""
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = from_weights_only(
                checkpoint['message_hub'])
