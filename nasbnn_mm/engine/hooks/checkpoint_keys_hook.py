"""Refuse a checkpoint whose keys do not fit the model (``load_from``).

mmengine's ``Runner.load_checkpoint`` loads with ``strict=False`` and only
logs missing and unexpected keys, so a test of the wrong checkpoint (a
detector's weights in a classifier, a supernet in a static subnet) scores a
partly random model with exit status 0. This hook checks the keys and the
shapes before mmengine loads them and raises one line naming the first
missing, unexpected and mis-shaped keys. It runs for ``load_from`` and for
``resume`` alike, under ``tools/test.py``/``tools/train.py`` and under
MMPretrain's and MMDetection's own tools (it is a config entry).
"""
import logging
import re
from typing import Iterable, List, Mapping, Optional

import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import print_log

from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import CheckpointError, unwrap_model

__all__ = [
    'CheckpointKeysHook', 'checkpoint_key_problems', 'add_checkpoint_keys_hook'
]

# mmengine's Runner.load_checkpoint drops this prefix (revise_keys).
_DDP_PREFIX = re.compile(r'^module\.')
# How many keys of each kind a message names.
_NAMED = 2


def _first(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    more = f' (+{len(keys) - _NAMED} more)' if len(keys) > _NAMED else ''
    return ', '.join(repr(k) for k in keys[:_NAMED]) + more


def checkpoint_key_problems(model: nn.Module,
                            checkpoint: Mapping) -> List[str]:
    """What keeps ``checkpoint`` from loading into ``model`` exactly.

    Keys are compared as ``model.load_state_dict`` sees them, so modules
    that convert entries while loading (e.g. ``PackedNASBNN`` packing float
    weights) are judged by what they accept. When every shape fits, the
    entries are loaded (``strict=False``) to learn the missing and
    unexpected keys; mmengine loads the same entries again right after.

    Args:
        model (nn.Module): The (unwrapped) model.
        checkpoint (Mapping): A checkpoint dict (its ``state_dict`` is
            used when present) or a state dict.

    Returns:
        list[str]: Phrases such as ``"3 missing keys: 'head.fc.bias',
        'head.fc.weight' (+1 more)"``; empty when everything fits.
    """
    state = checkpoint.get('state_dict', checkpoint)
    state = {_DDP_PREFIX.sub('', k): v for k, v in state.items()}
    expected = model.state_dict()
    mis_shaped = sorted(
        k for k in set(state) & set(expected) if hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(expected[k].shape))
    if mis_shaped:
        key = mis_shaped[0]
        return [
            f'{len(mis_shaped)} shape mismatches, first {key!r}: '
            f'{tuple(state[key].shape)} in the checkpoint, '
            f'{tuple(expected[key].shape)} in the model'
        ]
    missing, unexpected = model.load_state_dict(state, strict=False)
    return [
        f'{len(keys)} {kind} keys: {_first(keys)}'
        for kind, keys in (('missing', missing), ('unexpected', unexpected))
        if keys
    ]


@HOOKS.register_module()
class CheckpointKeysHook(Hook):
    """Fail when a loaded checkpoint does not fit the model.

    Shipped configs list it in ``custom_hooks``; ``tools/test.py`` adds it
    to any config without it. An intended partial load (e.g. a checkpoint
    of a classifier into a model that adds layers) opts out with
    ``allow_partial_load=True`` (``tools/test.py --allow-partial-load``):
    the problems are then logged as a warning.

    Args:
        allow_partial_load (bool): Warn instead of failing.
            Defaults to False.
        checkpoint_name (str, optional): The file, for messages; by default
            the runner's ``load_from``.

    Example:
        >>> custom_hooks = [dict(type='nasbnn_mm.CheckpointKeysHook')]
    """

    # Before any other hook edits the loaded checkpoint.
    priority = 'VERY_HIGH'

    def __init__(self,
                 allow_partial_load: bool = False,
                 checkpoint_name: Optional[str] = None) -> None:
        self.allow_partial_load = allow_partial_load
        self.checkpoint_name = checkpoint_name

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check ``checkpoint`` against ``runner.model`` before loading."""
        problems = checkpoint_key_problems(
            unwrap_model(runner.model), checkpoint)
        if not problems:
            return
        name = self.checkpoint_name or runner.cfg.get('load_from') or \
            'the resumed checkpoint'
        model = type(unwrap_model(runner.model)).__name__
        message = (f'checkpoint {name} does not fit the model ({model}): '
                   f'{"; ".join(problems)}')
        if self.allow_partial_load:
            print_log(
                f'{message} (allowed: allow_partial_load)',
                logger='current',
                level=logging.WARNING)
            return
        raise CheckpointError(
            f'{message}; for an intended partial load set '
            'allow_partial_load=True in nasbnn_mm.CheckpointKeysHook '
            '(tools/test.py --allow-partial-load)')


def add_checkpoint_keys_hook(cfg: Config,
                             checkpoint: Optional[str] = None,
                             allow_partial_load: bool = False) -> None:
    """Make ``cfg``'s :class:`CheckpointKeysHook` check what it loads.

    Adds the hook to a config without it (e.g. one whose ``custom_hooks``
    replace the shipped list), so a tool checks every config.

    Args:
        cfg (Config): The config (changed in place).
        checkpoint (str, optional): The file, for messages.
        allow_partial_load (bool): Set the hook's opt-out.
            Defaults to False.
    """
    name = CheckpointKeysHook.__name__
    hooks = list(cfg.get('custom_hooks', None) or [])
    mine = [h for h in hooks if str(h.get('type')).split('.')[-1] == name]
    if not mine:
        mine = [dict(type=f'nasbnn_mm.{name}')]
        hooks += mine
    for hook in mine:
        if checkpoint is not None:
            hook['checkpoint_name'] = checkpoint
        if allow_partial_load:
            hook['allow_partial_load'] = True
    cfg.custom_hooks = hooks
