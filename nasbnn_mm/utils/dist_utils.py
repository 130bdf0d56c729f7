"""Distributed helpers shared by the algorithms, the engine and the tools."""
import contextlib
from typing import Dict, Iterable, Iterator, List

import torch
import torch.distributed as dist
import torch.nn as nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

__all__ = [
    'init_cpu_process_group', 'tool_process_group', 'all_reduce_gradients',
    'broadcast_tensors'
]


def init_cpu_process_group(launcher: str) -> None:
    """Start a gloo process group on a machine without CUDA.

    mmengine's ``pytorch`` launcher always selects a CUDA device; when the
    group already exists the runner uses it as it is, so CPU-only machines
    can run distributed training, search and tests (e.g. torchrun with
    ``--launcher pytorch`` on CPU).
    """
    if launcher == 'pytorch' and not torch.cuda.is_available() \
            and not dist.is_initialized():
        dist.init_process_group('gloo')


@contextlib.contextmanager
def tool_process_group(launcher: str) -> Iterator[None]:
    """A tool's process group: :func:`init_cpu_process_group` before the
    body; after it, the group the body's run created (ours or the
    runner's) is destroyed.

    A gloo group left to interpreter shutdown can abort the process
    ("terminate called without an active exception", SIGABRT; see
    pytorch/pytorch#190489): a finished torchrun job then fails. A group
    that existed before the tool started is left alone.
    """
    existed = dist.is_available() and dist.is_initialized()
    init_cpu_process_group(launcher)
    try:
        yield
    finally:
        if not existed and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _by_dtype(tensors: Iterable[torch.Tensor]) -> List[List[torch.Tensor]]:
    groups: Dict[torch.dtype, List[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    return list(groups.values())


def all_reduce_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the existing gradients of ``params`` across ranks.

    One flat bucket per dtype, so a step costs one collective per dtype
    however many parameters it has. Does nothing outside a distributed run.
    Every rank must hold gradients for the same parameters.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    for group in _by_dtype(grads):
        flat = _flatten_dense_tensors(group)
        dist.all_reduce(flat)
        flat.div_(dist.get_world_size())
        for g, synced in zip(group, _unflatten_dense_tensors(flat, group)):
            g.copy_(synced)


def broadcast_tensors(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s values of ``tensors`` to every rank (in place)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for group in _by_dtype(t.data for t in tensors):
        flat = _flatten_dense_tensors(group)
        dist.broadcast(flat, src=src)
        for t, synced in zip(group, _unflatten_dense_tensors(flat, group)):
            t.copy_(synced)
