"""Keep the supernet's subnet sampler in the checkpoint."""
import random

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from nasbnn_mm.registry import HOOKS

__all__ = ['SamplerStateHook']

CHECKPOINT_KEY = 'subnet_sampler_rng'


def _algorithm(runner):
    model = runner.model
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class SamplerStateHook(Hook):
    """Save and restore the state of the algorithm's subnet sampler.

    The sandwich rule draws random subnets from ``model.rng`` (a
    :class:`random.Random`); keeping its state in the checkpoint makes a
    resumed run draw the same subnets as an uninterrupted one. The state is
    stored as plain ints (``torch.load(weights_only=True)`` accepts it).
    """

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        version, internal, gauss = _algorithm(runner).rng.getstate()
        checkpoint[CHECKPOINT_KEY] = dict(
            version=version, internal=list(internal), gauss_next=gauss)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            return
        rng: random.Random = _algorithm(runner).rng
        rng.setstate((state['version'], tuple(state['internal']),
                      state['gauss_next']))
