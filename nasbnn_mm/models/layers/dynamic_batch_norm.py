"""Sliceable batch normalization for the NAS-BNN supernet."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from nasbnn_mm.ops.training import (batch_norm_backward, batch_norm_forward,
                                    training_ext)
from .dynamic_op import DynamicMixin

__all__ = ['DynamicBatchNorm2d']


class BatchNormFunction(torch.autograd.Function):
    """``F.batch_norm(x, ..., training=True)`` of a contiguous (N, C, H, W)
    CPU float32 map by :func:`~nasbnn_mm.ops.training.batch_norm_forward`
    (the running statistics updated in place); saves ``x`` and the
    per-channel mean and ``1 / std``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor,
                running_mean: Optional[Tensor], running_var: Optional[Tensor],
                momentum: float, eps: float) -> Tensor:
        y, mean, invstd = batch_norm_forward(x, weight, bias, running_mean,
                                             running_var, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, mean, invstd = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(
            grad.contiguous(), x, weight, mean, invstd)
        return grad_x, grad_weight, grad_bias, None, None, None, None


def _batch_norm_kernel_applies(x: Tensor, weight: Optional[Tensor]) -> bool:
    """The extension's batch norm runs on ``x`` (training, affine): a
    contiguous CPU float32 map with more than one value per channel."""
    return (weight is not None and x.dim() == 4 and x.is_contiguous()
            and x.shape[0] * x.shape[2] * x.shape[3] > 1
            and training_ext(x) is not None)


class DynamicBatchNorm2d(DynamicMixin, nn.BatchNorm2d):
    """BatchNorm2d that normalizes the first C channels of its maximum.

    Affine parameters and running statistics are sliced views
    ``[:C]`` with ``C = x.shape[1]``, so training updates the shared running
    statistics of those channels in place. Being a ``BatchNorm2d`` it is
    seen by weight-decay rules and BN recalibration.

    NOTE: do not convert it with ``nn.SyncBatchNorm.convert_sync_batchnorm``
    (MMEngine's ``sync_bn`` option): the replacement cannot slice.

    Args:
        max_num_features (int): Largest channel count.
        eps (float): Added to the variance. Defaults to 1e-5.
        momentum (float, optional): Running-statistics momentum; None for a
            cumulative average. Defaults to 0.1.
        affine (bool): Learnable weight and bias. Defaults to True.
        track_running_stats (bool): Keep running statistics. Defaults to
            True.

    Shape:
        - Input: (N, C, H, W) with C <= max_num_features.
        - Output: (N, C, H, W).

    Example:
        >>> bn = DynamicBatchNorm2d(64)
        >>> bn(torch.randn(2, 32, 4, 4)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(self,
                 max_num_features: int,
                 eps: float = 1e-5,
                 momentum: float = 0.1,
                 affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__(max_num_features, eps, momentum, affine,
                         track_running_stats)

    def forward(self, x: Tensor) -> Tensor:
        """Batch-normalize with the first ``x.shape[1]`` channels' parameters.

        Args:
            x (Tensor): (N, C, H, W).

        Returns:
            Tensor: (N, C, H, W).
        """
        self._check_input_dim(x)
        c = x.shape[1]
        if c > self.num_features:
            raise ValueError(f'channels {c} (x.shape[1]) exceed '
                             f'max_num_features {self.num_features}')
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        use_running = not self.training or self.track_running_stats
        running_mean = running_var = None
        if use_running and self.running_mean is not None:
            running_mean = self.running_mean[:c]
            running_var = self.running_var[:c]
        weight = bias = None
        if self.affine:
            weight, bias = self.weight[:c], self.bias[:c]
        if use_batch_stats and _batch_norm_kernel_applies(x, weight):
            return BatchNormFunction.apply(x, weight, bias, running_mean,
                                           running_var, factor, self.eps)
        return F.batch_norm(x, running_mean, running_var, weight, bias,
                            use_batch_stats, factor, self.eps)

    def largest_choice(self) -> Dict[str, int]:
        """All channels."""
        return dict(channels=self.num_features)

    def _to_static(self, channels: int) -> nn.BatchNorm2d:
        """The first ``channels`` as a BatchNorm2d: copies of the sliced
        parameters and statistics."""
        if not 1 <= channels <= self.num_features:
            raise ValueError(f'channels {channels} not in '
                             f'[1, {self.num_features}]')
        state = {
            k: v[:channels] if v.dim() else v
            for k, v in self.state_dict().items()
        }
        static = nn.BatchNorm2d(channels, self.eps, self.momentum, self.affine,
                                self.track_running_stats)
        if state:
            static.to(next(iter(state.values())).device)
        static.load_state_dict(state)
        return static
