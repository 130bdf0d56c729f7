"""Start the final training of a found width from a wider network."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch.nn.modules.batchnorm import _BatchNorm

from nasbnn_mm.nas.width_inheritance import inherit_leading_channels
from nasbnn_mm.registry import HOOKS
from nasbnn_mm.utils import extract_state_dict, unwrap_model

__all__ = ['InheritLeadingChannelsHook']


@HOOKS.register_module()
class InheritLeadingChannelsHook(Hook):
    """Start training from the leading channels of a wider checkpoint.

    The final training of a found network (Shen et al., "Searching for
    Accurate Binary Neural Architectures", https://arxiv.org/abs/1909.07378,
    sec. 3.1) starts, like the search's candidates, from the first channels
    of the uniform-4x network: before the first iteration every tensor of
    the model takes the leading slice of the same key in ``checkpoint``
    (read with ``weights_only=True``, key ``state_dict``;
    :func:`~nasbnn_mm.nas.width_inheritance.inherit_leading_channels`). A
    resumed run (iteration > 0) keeps its own weights.

    Args:
        checkpoint (str): The wide network's checkpoint.
        reset_bn_stats (bool): Reset the BN running statistics after
            inheriting (the affine parameters are kept): the wide network's
            do not fit the narrower one, and with a short schedule they
            would dominate the evaluation. Defaults to False.

    Example (config)::

        custom_hooks = [
            dict(type='nasbnn_mm.InheritLeadingChannelsHook',
                 checkpoint='work_dirs/vgg-small_4x_digits/iter_12.pth')
        ]
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str, reset_bn_stats: bool = False) -> None:
        self.checkpoint = checkpoint
        self.reset_bn_stats = reset_bn_stats

    def before_train(self, runner) -> None:
        """Load the leading channels unless the run was resumed."""
        if runner.iter > 0:
            return
        state = extract_state_dict(
            self.checkpoint, what='wide network checkpoint')
        model = unwrap_model(runner.model)
        inherit_leading_channels(model, state)
        if self.reset_bn_stats:
            for module in model.modules():
                if isinstance(module, _BatchNorm):
                    module.reset_running_stats()
        print_log(
            f'initialised from the leading channels of {self.checkpoint}',
            logger='current')
