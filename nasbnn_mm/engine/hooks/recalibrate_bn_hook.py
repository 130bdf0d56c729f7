"""Re-estimate BN statistics at the end of training epochs."""
from mmengine.hooks import Hook

from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import UserError, unwrap_model
from ..bn_calibration import loss_forward, recalibrate_bn, tensor_forward

__all__ = ['RecalibrateBNHook']


@HOOKS.register_module()
class RecalibrateBNHook(Hook):
    """Recalibrate every BatchNorm on training batches after an epoch.

    A binary network's activations change abruptly when latent weights
    change sign, so BN running averages (momentum 0.1) lag the network and
    validation swings by several points from epoch to epoch. After every
    ``interval`` epochs and after the last one, this hook replaces the
    running statistics with a cumulative average over ``num_batches``
    training batches (:func:`recalibrate_bn`, eval-mode forwards, no
    gradients), as the supernet's validation and the export do. It runs
    before the checkpoint is written (priority ``NORMAL`` < ``VERY_LOW``)
    and before validation, so both see the recalibrated statistics.

    Args:
        num_batches (int): Training batches to average. Defaults to 10.
        interval (int): Recalibrate every ``interval`` epochs (and after
            the last). Defaults to 1.
        forward_mode (str): How a batch runs through the model: 'tensor'
            (:func:`tensor_forward`, classifiers and backbones) or 'loss'
            (:func:`loss_forward`: with the data samples, e.g. a two-stage
            detector, whose RoI head runs on the RPN's proposals). Defaults
            to 'tensor'.
    """

    priority = 'NORMAL'
    FORWARDS = dict(tensor=tensor_forward, loss=loss_forward)

    def __init__(self,
                 num_batches: int = 10,
                 interval: int = 1,
                 forward_mode: str = 'tensor') -> None:
        if num_batches < 1:
            raise UserError(
                f'RecalibrateBNHook.num_batches: {num_batches} must be >= 1')
        if interval < 1:
            raise UserError(
                f'RecalibrateBNHook.interval: {interval} must be >= 1')
        if forward_mode not in self.FORWARDS:
            raise UserError(f'RecalibrateBNHook.forward_mode: '
                            f'{forward_mode!r} not in {sorted(self.FORWARDS)}')
        self.num_batches = num_batches
        self.interval = interval
        self.forward = self.FORWARDS[forward_mode]

    def after_train_epoch(self, runner) -> None:
        if not (self.every_n_epochs(runner, self.interval)
                or self.is_last_train_epoch(runner)):
            return
        self.recalibrate(runner)

    def recalibrate(self, runner) -> int:
        """Recalibrate ``runner.model`` now; returns the batches used."""
        module = unwrap_model(runner.model)
        used = recalibrate_bn(module, runner.train_dataloader,
                              self.forward(module), self.num_batches)
        runner.logger.info(f'BN statistics recalibrated on {used} '
                           'training batches')
        return used
