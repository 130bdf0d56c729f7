"""Helpers shared by the packed-inference benchmarks of this folder.

Round-robin timing (one iteration of each arm in turn, so load from other
processes hits every arm alike), the machine's load average, a summary of
timing samples with their spread, untrained NAS-BNN subnets with their
LSQ steps initialised (what a packed preset is timed on), and the fp32
networks a CPU user would pick instead.
"""
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn
import torchvision

from nasbnn_mm.deploy import PackedNASBNN, pack_nasbnn
from nasbnn_mm.models.backbones.nasbnn import NASBNN
from nasbnn_mm.nas import DEFAULT_SPACE
from nasbnn_mm.ops import binary_conv as ops

__all__ = [
    'time_round_robin', 'spread', 'summarize', 'load_average', 'cpu_info',
    'untrained', 'packed_classifier', 'FP_ARMS', 'fp32_reference',
    'fp32_networks'
]

# torchvision constructors of the fp32 reference arms.
FP_ARMS = {
    'MobileNetV3-Large': torchvision.models.mobilenet_v3_large,
    'MobileNetV2': torchvision.models.mobilenet_v2,
    'ResNet-18': torchvision.models.resnet18,
}


def time_round_robin(
        arms: Dict[str, Callable[[], object]],
        warmup: int,
        runs: int,
        clock: Callable[[],
                        float] = time.perf_counter) -> Dict[str, List[float]]:
    """Seconds of every run of each arm, timed round-robin.

    Args:
        arms (dict): Name -> callable running one iteration.
        warmup (int): Untimed rounds first.
        runs (int): Timed rounds.
        clock (Callable): Wall clock (default) or ``time.process_time``:
            the CPU time of the process, which leaves out the time spent
            waiting for a core on a loaded machine (meaningful for
            single-threaded arms only).

    Returns:
        dict: Name -> ``runs`` durations in seconds, in run order.
    """
    for _ in range(warmup):
        for fn in arms.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in arms}
    for _ in range(runs):
        for name, fn in arms.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def spread(values: List[float]) -> Dict[str, float]:
    """Median, quartiles, min and max of samples."""
    v = sorted(values)
    if len(v) == 1:
        return dict(median=v[0], q1=v[0], q3=v[0], min=v[0], max=v[0])
    q1, _, q3 = statistics.quantiles(v, n=4, method='inclusive')
    return dict(median=statistics.median(v), q1=q1, q3=q3, min=v[0], max=v[-1])


def summarize(seconds: List[float]) -> Dict[str, float]:
    """:func:`spread` of timing samples, in ms."""
    return spread([s * 1e3 for s in seconds])


def load_average() -> List[float]:
    """The 1, 5 and 15 minute load averages (as ``uptime``)."""
    return [round(v, 2) for v in os.getloadavg()]


def cpu_info() -> Dict[str, object]:
    """CPU model and flags, kernel path, torch version and threads."""
    model = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(
        model=model,
        cores=os.cpu_count(),
        flags=ops.cpu_features(),
        available_paths=ops.available_kernel_paths(),
        kernel_path=ops.kernel_path(),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        python=sys.version.split()[0])


@torch.no_grad()
def untrained(arch,
              space=DEFAULT_SPACE,
              size: int = 224,
              seed: int = 0) -> NASBNN:
    """A float subnet in eval mode, its weights drawn from ``seed``, with
    its LSQ steps initialised on one random image (they initialise on
    their first batch)."""
    torch.manual_seed(seed)
    model = NASBNN(arch, space).eval()
    gen = torch.Generator().manual_seed(seed)
    model(torch.randn(1, 3, size, size, generator=gen))
    return model


def packed_classifier(arch,
                      space=DEFAULT_SPACE,
                      size: int = 224,
                      seed: int = 0,
                      num_classes: Optional[int] = 1000) -> PackedNASBNN:
    """An untrained packed subnet with an FP classifier of ``num_classes``
    (``None``: the backbone only)."""
    model = untrained(arch, space, size, seed)
    fc = None
    if num_classes is not None:
        torch.manual_seed(seed)
        fc = nn.Linear(model.arch.stages[-1][-1].channels, num_classes)
    return pack_nasbnn(model, fc)


def fp32_reference(name: str, seed: int = 0) -> nn.Module:
    """The fp32 reference arm ``name`` of :data:`FP_ARMS`: random weights
    from ``seed``, eval mode, channels_last memory."""
    torch.manual_seed(seed)
    model = FP_ARMS[name](weights=None).eval()
    return model.to(memory_format=torch.channels_last)


def fp32_networks(x: torch.Tensor, seed: int = 0) -> Callable[[], None]:
    """A function that runs every fp32 reference network on ``x``
    (channels_last, ``inference_mode``): what runs between two forwards of
    a packed model in :mod:`benchmark_packed_vs_fp`'s round-robin."""
    x_cl = x.contiguous(memory_format=torch.channels_last)
    nets = [fp32_reference(name, seed) for name in FP_ARMS]

    def run() -> None:
        with torch.inference_mode():
            for net in nets:
                net(x_cl)

    return run
