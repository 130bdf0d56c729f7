"""Load the weights a search starts from, strictly, with one-line errors."""
from mmengine.logging import print_log
from torch import nn

from nasbnn_mm.utils import (CheckpointError, extract_state_dict, file_digest,
                             read_checkpoint)
from nasbnn_mm.utils.conventions import (checkpoint_conventions,
                                         merge_conventions)
from ..hooks import runner_conventions

__all__ = ['load_weights']


def load_weights(model: nn.Module, path: str) -> dict:
    """Load every tensor of a checkpoint into ``model`` (strict).

    The file is read with ``weights_only=True``
    (:func:`~nasbnn_mm.utils.extract_state_dict`: key ``state_dict`` if
    present, DDP's ``module.`` prefix dropped).

    Args:
        model (nn.Module): The unwrapped model.
        path (str): A local checkpoint file.

    Returns:
        dict: ``{'path', 'digest'}``, the file's identity (SHA-256 prefix,
        :func:`~nasbnn_mm.utils.file_digest`) for the search settings.

    Raises:
        UserError: One line naming both values, if the conventions stored
            in the checkpoint (``meta['nasbnn_conventions']``) contradict
            the model's (``tools/search.py`` builds the model from them).
        CheckpointError: One line naming the file, if it cannot be read
            or its keys or shapes do not fit the model.
    """
    checkpoint = read_checkpoint(path, 'checkpoint')
    conventions = runner_conventions(model)
    if conventions is not None:
        stored = checkpoint_conventions(checkpoint)
        merge_conventions({
            k: v
            for k, v in conventions.items() if k in stored
        }, stored, path)
    state = extract_state_dict(checkpoint, what='checkpoint')
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        reason = ' '.join(str(e).split())
        raise CheckpointError(
            f'checkpoint {path}: does not fit the model '
            f'{type(model).__name__} ({reason[:300]})') from e
    print_log(f'loaded weights from {path}', logger='current')
    return dict(path=path, digest=file_digest(path))
