"""The conventions NAS-BNN weights depend on, stored with the weights.

The same tensors mean different networks under different conventions:
the weight normalization variant of eq. (6) (``weight_norm``: True for the
paper's, 'official' for the official code's unbiased-std variant, False
for the ablation), whether the 8-bit stem quantizes its input
(``stem_quantize_input``), how grouped convs slice the shared weight
(``group_slicing``: 'cyclic' or 'prefix'), which kernels have a
Bi-Transformation (``bi_transform``: False, True = one per kernel size,
'max_kernel' = only the largest kernel, the official rule) and the search
space. Checkpoints carry them in ``meta['nasbnn_conventions']``
(:func:`add_conventions`); every loader reads them
(:func:`checkpoint_conventions`) and takes them over, refusing a config
that says otherwise with one line (:func:`merge_conventions`). A checkpoint
without them (written before they existed) keeps the config's values.
"""
import os.path as osp
from typing import Any, Dict, Mapping, Optional

from .checkpoint import CheckpointType, checkpoint_meta
from .errors import UserError

__all__ = [
    'CONVENTIONS_KEY', 'CONVENTION_NAMES', 'OFFICIAL_CONVENTIONS',
    'SUPERNET_DEFAULTS', 'normalize_convention', 'checkpoint_conventions',
    'add_conventions', 'merge_conventions', 'init_checkpoint'
]

CONVENTIONS_KEY = 'nasbnn_conventions'
# Convention names, in the order messages list them.
CONVENTION_NAMES = ('weight_norm', 'stem_quantize_input', 'group_slicing',
                    'bi_transform', 'search_space')
# A converted checkpoint of the official code (github.com/VDIGPKU/NAS-BNN,
# models/superbnn.py): unbiased-std weight normalization without eps, a
# stem that quantizes only its weights, cyclic group slicing and a
# Bi-Transformation of the largest kernel only.
OFFICIAL_CONVENTIONS = dict(
    weight_norm='official',
    stem_quantize_input=False,
    group_slicing='cyclic',
    bi_transform='max_kernel')
# What a SuperBNN built without these options uses.
SUPERNET_DEFAULTS = dict(
    weight_norm=True,
    stem_quantize_input=True,
    group_slicing='cyclic',
    bi_transform=True)
# Spellings of one value.
_SYNONYMS = {
    'weight_norm': {
        'paper': True
    },
    'bi_transform': {
        'per_kernel': True
    }
}
# init_cfg types whose checkpoint holds the weights of a static subnet.
_WEIGHT_INITS = ('SupernetInit', 'Pretrained')


def normalize_convention(name: str, value: Any) -> Any:
    """One spelling per value: ``weight_norm='paper'`` is True,
    ``bi_transform='per_kernel'`` is True."""
    if isinstance(value, str):
        return _SYNONYMS.get(name, {}).get(value, value)
    return value


def checkpoint_conventions(checkpoint: CheckpointType,
                           what: str = 'checkpoint') -> Dict[str, Any]:
    """The conventions a checkpoint's weights were written with.

    Args:
        checkpoint (str | Mapping): A path or a loaded checkpoint.
        what (str): What the file is meant to be, for messages.

    Returns:
        dict: ``meta['nasbnn_conventions']`` with normalized values; {}
        for a checkpoint written before conventions were stored (and for
        a state dict without ``meta``).

    Raises:
        CheckpointError: If the file cannot be read.
    """
    stored = checkpoint_meta(checkpoint, what).get(CONVENTIONS_KEY)
    if not isinstance(stored, Mapping):
        return {}
    return {
        name: normalize_convention(name, stored[name])
        for name in CONVENTION_NAMES if name in stored
    }


def add_conventions(meta: Optional[Mapping[str, Any]],
                    conventions: Mapping[str, Any]) -> Dict[str, Any]:
    """``meta`` (a copy) with ``conventions`` under
    ``'nasbnn_conventions'``; only the known names are kept."""
    meta = dict(meta or {})
    meta[CONVENTIONS_KEY] = {
        name: normalize_convention(name, conventions[name])
        for name in CONVENTION_NAMES if name in conventions
    }
    return meta


def merge_conventions(
        configured: Mapping[str, Any],
        stored: Mapping[str, Any],
        where: str,
        same: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The conventions to build a model with: the checkpoint's, checked
    against what the config sets.

    Args:
        configured (Mapping): The values a config sets explicitly (names
            it leaves out are taken from ``stored``).
        stored (Mapping): The checkpoint's (:func:`checkpoint_conventions`;
            {} for an old checkpoint: ``configured`` is kept).
        where (str): The checkpoint, for messages.
        same (Mapping, optional): Per name, a function ``f(a, b) -> bool``
            comparing two values (e.g. search spaces given by name and as
            a dict). Defaults to normalized equality.

    Returns:
        dict: ``configured`` completed with ``stored``.

    Raises:
        UserError: One line naming the first contradiction and both
            values, e.g. ``weight_norm: config says True, checkpoint
            ckpt.pth says 'official'``.
    """
    same = same or {}
    merged = dict(stored)
    for name, value in configured.items():
        if name in stored:
            equal = same.get(name, lambda a, b: a == b)
            if not equal(normalize_convention(name, value), stored[name]):
                shown = stored[name]
                if name == 'search_space' and isinstance(shown, Mapping):
                    shown = 'another search space'
                raise UserError(
                    f'{name}: config says {value!r}, checkpoint {where} '
                    f'says {shown!r} (drop {name} from the config: it is '
                    'taken from the checkpoint)')
        merged[name] = normalize_convention(name, value)
    return merged


def init_checkpoint(init_cfg: Any) -> Optional[CheckpointType]:
    """The checkpoint of a ``SupernetInit`` or ``Pretrained`` init_cfg.

    Returns:
        str | Mapping | None: The checkpoint (a dict, or a path to an
        existing local file), or None when ``init_cfg`` has none or the
        file does not exist yet (the initializer reports that when it
        runs).
    """
    inits = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for init in inits:
        if isinstance(init, Mapping) and init.get('type') in _WEIGHT_INITS:
            checkpoint = init.get('checkpoint')
            if isinstance(checkpoint, Mapping) or (isinstance(checkpoint, str)
                                                   and osp.isfile(checkpoint)):
                return checkpoint
    return None
