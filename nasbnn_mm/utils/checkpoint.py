"""One way to read checkpoints: ``weights_only=True``, one-line errors.

Every weight file the package reads (supernet and subnet checkpoints,
packed files, converter inputs, search resumes) goes through
:func:`read_checkpoint`; state dicts are taken out of it with
:func:`extract_state_dict`. Files are written with :func:`save_atomic`,
so an interrupted write never leaves a truncated file behind. Weights
load into a module with :func:`load_state_dict_strict`, whose error names
the first keys that do not fit.
"""
import hashlib
import io
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.fileio import get as get_bytes
from torch import Tensor

from .errors import CheckpointError

__all__ = [
    'CheckpointType', 'read_checkpoint', 'extract_state_dict',
    'checkpoint_meta', 'file_digest', 'save_atomic', 'shape_mismatches',
    'load_state_dict_strict'
]

CheckpointType = Union[str, Mapping[str, Any]]
# DistributedDataParallel's prefix, left in checkpoints saved unwrapped.
_DDP_PREFIX = 'module.'
# How many keys an error lists before '...'.
_MAX_LISTED = 5


def _reason(error: BaseException) -> str:
    """What is wrong with a file ``torch.load`` refused, in one phrase."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ''
    # NOTE: weights_only loading names a refused class 'Unsupported
    # global'; bytes that are no pickle opcode at all (a text file, a
    # plain pickle) fail as 'Unsupported operand': not a checkpoint.
    if isinstance(error, pickle.UnpicklingError) and \
            'Unsupported global' in str(error):
        return ('it holds Python objects that weights_only loading refuses '
                '(saved with arbitrary pickles); re-save its tensors and '
                'plain values, e.g. torch.save({"state_dict": sd}, path), '
                'from a trusted environment')
    damaged_zip = isinstance(error, RuntimeError) and any(
        sign in text for sign in ('zip archive', 'central directory',
                                  'PytorchStreamReader'))
    if damaged_zip or isinstance(error,
                                 (zipfile.BadZipFile, EOFError, IndexError)):
        return ('it is truncated or damaged (not a complete PyTorch zip '
                'archive); copy or download it again, or use an earlier '
                'checkpoint')
    bad_magic = isinstance(error, RuntimeError) and 'magic number' in text
    if bad_magic or isinstance(error, pickle.UnpicklingError):
        return ('it is not a PyTorch checkpoint (neither a zip archive '
                'nor a pickle of tensors)')
    return f'it cannot be read as a PyTorch checkpoint ({text[:120]})'


def read_checkpoint(checkpoint: CheckpointType,
                    what: str = 'checkpoint') -> Mapping[str, Any]:
    """Read a checkpoint onto the CPU with ``torch.load(weights_only=True)``.

    Args:
        checkpoint (str | Mapping): A local path or any mmengine file
            backend URI; a mapping passes through unchanged.
        what (str): What the file is meant to be, for messages (e.g.
            'supernet checkpoint'). Defaults to 'checkpoint'.

    Returns:
        Mapping: The loaded object (a checkpoint dict or a state dict).

    Raises:
        CheckpointError: One line naming the file and what is wrong
            (missing, truncated, not a checkpoint, needs unsafe loading,
            not a dict).
    """
    if isinstance(checkpoint, Mapping):
        return checkpoint
    path = str(checkpoint)
    if '://' not in path and not osp.isfile(path):
        raise CheckpointError(f'{what} {path}: no such file')
    try:
        data = get_bytes(path)
        loaded = torch.load(
            io.BytesIO(data), map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: B902 (torch raises many kinds)
        raise CheckpointError(f'{what} {path}: {_reason(e)}') from e
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f'{what} {path}: holds a {type(loaded).__name__}, expected a '
            'dict (a checkpoint or a state dict)')
    return loaded


def extract_state_dict(checkpoint: CheckpointType,
                       prefix: str = '',
                       what: str = 'checkpoint',
                       bare_ok: bool = False) -> Dict[str, Tensor]:
    """The tensors of a checkpoint, optionally those under one prefix.

    Takes ``checkpoint['state_dict']`` when present (else the mapping
    itself), drops DistributedDataParallel's ``module.`` prefix when every
    key has it, and keeps only ``prefix`` keys, with the prefix removed.

    Args:
        checkpoint (str | Mapping): See :func:`read_checkpoint`.
        prefix (str): E.g. ``'backbone.'``; '' keeps every key.
            Defaults to ''.
        what (str): What the file is meant to be, for messages.
        bare_ok (bool): When no key has ``prefix``, take every key: the
            state dict of the part itself (e.g. a bare backbone's).
            Defaults to False.

    Returns:
        dict[str, Tensor]: The selected entries.

    Raises:
        CheckpointError: If the file cannot be read or has no tensors
            under ``prefix``.
    """
    ckpt = read_checkpoint(checkpoint, what)
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, Mapping):
        raise CheckpointError(f'{_name(checkpoint, what)}: state_dict is a '
                              f'{type(state).__name__}, expected a dict')
    state = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if state and all(k.startswith(_DDP_PREFIX) for k in state):
        state = {k[len(_DDP_PREFIX):]: v for k, v in state.items()}
    if prefix and not (bare_ok
                       and not any(k.startswith(prefix) for k in state)):
        state = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
    if not state:
        where = f' under {prefix!r}' if prefix else ''
        raise CheckpointError(f'{_name(checkpoint, what)}: no tensors{where}')
    return state


def checkpoint_meta(checkpoint: CheckpointType,
                    what: str = 'checkpoint') -> Dict[str, Any]:
    """``checkpoint['meta']`` as a dict ({} when there is none).

    A local file is memory-mapped, so reading the meta of a large
    checkpoint does not read its tensors.
    """
    loaded = None
    if isinstance(checkpoint, str) and osp.isfile(checkpoint):
        try:
            loaded = torch.load(
                checkpoint, map_location='cpu', weights_only=True, mmap=True)
        except Exception:  # noqa: B902 (read_checkpoint explains it)
            loaded = None
    if not isinstance(loaded, Mapping):
        loaded = read_checkpoint(checkpoint, what)
    meta = loaded.get('meta')
    return dict(meta) if isinstance(meta, Mapping) else {}


def file_digest(path: str, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of a file."""
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            sha.update(block)
    return sha.hexdigest()[:length]


def save_atomic(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` through a temporary file and a rename.

    Raises:
        CheckpointError: If the folder of ``path`` does not exist.
    """
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise CheckpointError(f'{path}: folder {folder} does not exist')
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def shape_mismatches(module: nn.Module,
                     state_dict: Mapping[str, Tensor]) -> List[str]:
    """``'<key>: checkpoint <shape> vs model <shape>'`` for every key of
    ``state_dict`` that ``module`` has with another shape."""
    expected = module.state_dict()
    return [
        f'{key}: checkpoint {tuple(value.shape)} vs model '
        f'{tuple(expected[key].shape)}' for key, value in state_dict.items()
        if key in expected and value.shape != expected[key].shape
    ]


def list_some(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """The first ``limit`` items joined with '; ', and how many more."""
    listed = '; '.join(items[:limit])
    more = len(items) - limit
    return listed + (f'; ... ({more} more)' if more > 0 else '')


def load_state_dict_strict(module: nn.Module,
                           state_dict: Mapping[str, Tensor],
                           what: str = 'checkpoint',
                           target: Optional[str] = None) -> None:
    """Load every entry of ``state_dict`` into ``module``, all or an error.

    Args:
        module (nn.Module): The model.
        state_dict (Mapping): Its entries (keys as ``module.state_dict()``,
            or any its own ``_load_from_state_dict`` converts).
        what (str): The source, for messages (e.g. the file name).
        target (str, optional): The model, for messages. Defaults to the
            class name of ``module``.

    Raises:
        CheckpointError: One line ``<what>: does not fit <target>: ...``
            naming the mis-shaped keys, or the missing and unexpected ones.
            Nothing is loaded when shapes differ; after missing or
            unexpected keys the matching entries are loaded.
    """
    target = target or type(module).__name__
    mismatched = shape_mismatches(module, state_dict)
    if mismatched:
        raise CheckpointError(f'{what}: does not fit {target}: '
                              f'{list_some(mismatched)}')
    missing, unexpected = module.load_state_dict(state_dict, strict=False)
    problems = [
        f'{len(keys)} {kind} keys ({list_some(keys, 3)})'
        for kind, keys in (('missing', missing), ('unexpected', unexpected))
        if keys
    ]
    if problems:
        raise CheckpointError(f'{what}: does not fit {target}: '
                              f'{", ".join(problems)}')


def _name(checkpoint: CheckpointType, what: str) -> str:
    return what if isinstance(checkpoint, Mapping) else f'{what} {checkpoint}'
