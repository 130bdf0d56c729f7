"""The packed file: a :class:`PackedNASBNN` saved and loaded.

A packed file holds the spec, the search space, the options that rebuild
the model and its state dict (sign bits, folded affines, the stem and the
classifier): plain types and CPU tensors, so ``torch.load(weights_only=True)``
reads it. Written atomically; read through the package's one checkpoint
reader.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence

from nasbnn_mm.utils import CheckpointError, CheckpointType
from nasbnn_mm.utils.checkpoint import (load_state_dict_strict,
                                        read_checkpoint, save_atomic)
from .packed_nasbnn import PackedNASBNN

__all__ = [
    'PACKED_FORMAT', 'PACKED_VERSION', 'packed_contents', 'save_packed',
    'load_packed'
]

PACKED_FORMAT = 'nasbnn_mm.packed_nasbnn'
PACKED_VERSION = 1


def packed_contents(model: PackedNASBNN,
                    meta: Optional[Dict[str, Any]] = None) -> dict:
    """The packed file's contents (plain types and CPU tensors only).

    Args:
        model (PackedNASBNN): The model.
        meta (dict, optional): Plain-Python provenance to store.

    Returns:
        dict: ``format``, ``version``, ``arch``, ``search_space``,
        ``config`` (the other constructor arguments), ``state_dict`` and
        ``meta``.
    """
    return dict(
        format=PACKED_FORMAT,
        version=PACKED_VERSION,
        arch=model.arch.to_dict(),
        search_space=model.space.to_dict(),
        config=dict(
            weight_norm=model.weight_norm,
            stem_quantize_input=model.stem_quantize_input,
            num_classes=model.num_classes),
        state_dict=OrderedDict(
            (k, v.detach().cpu()) for k, v in model.state_dict().items()),
        meta=dict(meta or {}))


def save_packed(model: PackedNASBNN,
                path: str,
                meta: Optional[Dict[str, Any]] = None) -> int:
    """Save a packed model (readable with ``weights_only=True``).

    Creates the folder of ``path`` if needed.

    Returns:
        int: The file size in bytes.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    save_atomic(packed_contents(model, meta), path)
    return osp.getsize(path)


def load_packed(path: CheckpointType,
                out_indices: Optional[Sequence[int]] = None) -> PackedNASBNN:
    """Load a file of :func:`save_packed`.

    Args:
        path (str | dict): The file or its loaded contents.
        out_indices (Sequence[int], optional): Stages to return. Defaults
            to the last one.

    Raises:
        CheckpointError: One line if the file cannot be read, is not a
            packed NAS-BNN file or does not fit the model it describes.
    """
    where = path if isinstance(path, str) else 'packed file'
    ckpt = read_checkpoint(path, 'packed file')
    if ckpt.get('format') != PACKED_FORMAT:
        raise CheckpointError(
            f'{where}: not a packed NAS-BNN file (format '
            f'{ckpt.get("format")!r}, expected {PACKED_FORMAT!r}); pack '
            'float checkpoints with tools/deploy/pack_subnet.py')
    if ckpt.get('version') != PACKED_VERSION:
        raise CheckpointError(f'{where}: packed file version '
                              f'{ckpt.get("version")} not supported '
                              f'(expected {PACKED_VERSION})')
    model = PackedNASBNN(
        ckpt['arch'],
        ckpt['search_space'],
        out_indices=(-1, ) if out_indices is None else out_indices,
        **ckpt['config'])
    load_state_dict_strict(model, ckpt['state_dict'], where)
    return model
