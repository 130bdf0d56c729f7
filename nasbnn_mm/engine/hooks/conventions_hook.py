"""Write the backbone's conventions into every checkpoint, check them on
loading.

A NAS-BNN checkpoint's tensors mean different networks under different
conventions (weight normalization variant, stem input quantization, group
slicing, Bi-Transformation rule, search space; see
:mod:`nasbnn_mm.utils.conventions`). This hook stores the model's in
``meta['nasbnn_conventions']`` of every checkpoint the runner saves, so
search, export, ``SupernetInit`` and packing take them from the file, and
refuses with one line a checkpoint (``load_from``, ``resume``) whose stored
conventions contradict the model's.
"""
from typing import Any, Dict, Optional

from mmengine.hooks import Hook

from nasbnn_mm.models import BaseSubnet, SuperBNN, model_conventions
from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import unwrap_model
from nasbnn_mm.utils.conventions import (add_conventions,
                                         checkpoint_conventions,
                                         merge_conventions)

__all__ = ['ConventionsHook', 'runner_conventions']


def runner_conventions(model: Any) -> Optional[Dict[str, Any]]:
    """The conventions of a model's NAS-BNN backbone (None without one)."""
    backbone = getattr(unwrap_model(model), 'backbone', None)
    if isinstance(backbone, (SuperBNN, BaseSubnet)):
        return model_conventions(backbone)
    return None


@HOOKS.register_module()
class ConventionsHook(Hook):
    """Keep the backbone's conventions in ``meta['nasbnn_conventions']``.

    A model without a NAS-BNN backbone is left alone.

    Example (a config's ``custom_hooks``)::

        custom_hooks = [dict(type='nasbnn_mm.ConventionsHook')]
    """

    priority = 'NORMAL'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        conventions = runner_conventions(runner.model)
        if conventions is not None:
            checkpoint['meta'] = add_conventions(
                checkpoint.get('meta'), conventions)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Raise ``UserError`` (one line naming both values) if the
        checkpoint's stored conventions contradict the model's."""
        conventions = runner_conventions(runner.model)
        if conventions is None:
            return
        stored = checkpoint_conventions(checkpoint)
        shared = {k: v for k, v in conventions.items() if k in stored}
        where = runner.cfg.get('load_from', None) or 'loaded'
        merge_conventions(shared, stored, str(where))
