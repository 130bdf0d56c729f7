"""Data parallel for algorithms that run several backward passes a step."""
from typing import Dict

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from nasbnn_mm.registry import MODEL_WRAPPERS
from nasbnn_mm.utils import all_reduce_gradients, broadcast_tensors

__all__ = ['SandwichDataParallel']


@MODEL_WRAPPERS.register_module()
class SandwichDataParallel(nn.Module):
    """Average gradients across ranks once per sandwich step.

    The sandwich rule accumulates the gradients of four subnets before one
    optimizer step, and each subnet leaves other parameters unused. Instead
    of DistributedDataParallel's per-backward hooks (which need unused
    parameter detection and ``no_sync`` bookkeeping), this wrapper lets the
    wrapped algorithm run its own ``train_step`` and all-reduces the
    accumulated gradients right before the optimizer step. Every rank samples
    the same subnets (the algorithm's sampler is seeded identically), so the
    same parameters have gradients on every rank. Parameters and buffers are
    broadcast from rank 0 at construction, buffers (BN statistics) again
    after every step.

    Use it with
    ``model_wrapper_cfg=dict(type='nasbnn_mm.SandwichDataParallel')``.

    Args:
        module (nn.Module): An algorithm whose ``train_step`` accepts a
            ``before_step`` callback.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        broadcast_tensors(list(module.parameters()) + list(module.buffers()))

    def average_gradients(self) -> None:
        """All-reduce and average every existing gradient (one bucket per
        dtype)."""
        all_reduce_gradients(self.module.parameters())

    def train_step(self, data,
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        log_vars = self.module.train_step(
            data, optim_wrapper, before_step=self.average_gradients)
        broadcast_tensors(self.module.buffers())
        return log_vars

    def val_step(self, data) -> list:
        return self.module.val_step(data)

    def test_step(self, data) -> list:
        return self.module.test_step(data)
