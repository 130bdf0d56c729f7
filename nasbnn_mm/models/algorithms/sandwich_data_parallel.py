"""Data parallel for algorithms that run several backward passes a step."""
from typing import Dict, List

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.optim import OptimWrapper
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from nasbnn_mm.registry import MODEL_WRAPPERS

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
        self._broadcast(list(module.parameters()) + list(module.buffers()))

    @staticmethod
    def _broadcast(tensors: List[torch.Tensor]) -> None:
        if not dist.is_initialized():
            return
        by_dtype: Dict[torch.dtype, List[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t.data)
        for group in by_dtype.values():
            flat = _flatten_dense_tensors(group)
            dist.broadcast(flat, src=0)
            for t, synced in zip(group, _unflatten_dense_tensors(flat, group)):
                t.copy_(synced)

    def average_gradients(self) -> None:
        """All-reduce and average every existing gradient in one bucket."""
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return
        grads = [
            p.grad for p in self.module.parameters() if p.grad is not None
        ]
        if not grads:
            return
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat.div_(dist.get_world_size())
        for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            g.copy_(synced)

    def train_step(self, data,
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        log_vars = self.module.train_step(
            data, optim_wrapper, before_step=self.average_gradients)
        self._broadcast(list(self.module.buffers()))
        return log_vars

    def val_step(self, data) -> list:
        return self.module.val_step(data)

    def test_step(self, data) -> list:
        return self.module.test_step(data)
