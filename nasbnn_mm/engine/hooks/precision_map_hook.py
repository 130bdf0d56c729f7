"""Report the precision map and check the backbone/neck widths at start."""
from mmengine.hooks import Hook

from nasbnn_mm.models.utils.precision_map import format_precision_map
from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import UserError, unwrap_model

__all__ = ['PrecisionMapHook', 'check_neck_in_channels']


def check_neck_in_channels(model) -> None:
    """Raise if a detector's neck does not read its backbone's widths.

    Applies when the backbone has ``out_channels`` (as ``NASBNN`` derives
    from its arch spec) and the neck has ``in_channels`` (as FPN).

    Raises:
        UserError: Naming both lists.
    """
    backbone = getattr(model, 'backbone', None)
    neck = getattr(model, 'neck', None)
    expected = getattr(backbone, 'out_channels', None)
    given = getattr(neck, 'in_channels', None)
    if expected is None or given is None:
        return
    if list(expected) != list(given):
        raise UserError(
            f'neck.in_channels {list(given)} != backbone.out_channels '
            f'{list(expected)} of {type(backbone).__name__} (its arch and '
            'out_indices); set neck.in_channels to the backbone widths')


@HOOKS.register_module()
class PrecisionMapHook(Hook):
    """At ``before_run``: check neck widths, log the precision map.

    The map lists which layers are binary, 8-bit or full precision (a
    summary per top-level module, then one line per layer). Add
    ``dict(type='nasbnn_mm.PrecisionMapHook')`` to ``custom_hooks``.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = unwrap_model(runner.model)
        check_neck_in_channels(model)
        runner.logger.info(format_precision_map(model))
