"""Distributed helpers shared by the command-line tools."""
import torch
import torch.distributed as dist

__all__ = ['init_cpu_process_group']


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
