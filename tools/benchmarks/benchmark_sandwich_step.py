"""Time of one sandwich-rule training step of the NAS-BNN supernet.

One step = the Bi-Teacher (largest subnet, full-precision weights) plus the
smallest and two random subnets, each forward + backward, then one Adam
step (built as the supernet configs build it: ``fused=True``; no weight
decay): what ``SandwichSupernet.train_step`` does every iteration. Prints the
median over ``--runs`` steps (after ``--warmup``) and one JSON line.
``--ablate X`` times two steps per run instead, with X on and off in
alternating order on the same subnets, and reports both and their ratio.

Example:
    python tools/benchmarks/benchmark_sandwich_step.py \\
        --space nasbnn_in1k --batch 32 --size 64
"""
import argparse
import contextlib
import json
import os.path as osp
import random
import statistics
import time
from collections import defaultdict
from typing import Callable, ContextManager, Dict, Iterator, List
from unittest import mock

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from torch.profiler import ProfilerActivity, profile, record_function

from nasbnn_mm.models.algorithms import SandwichSupernet
from nasbnn_mm.models.backbones import super_bnn
from nasbnn_mm.models.layers import (conv_operands, dynamic_batch_norm,
                                     dynamic_binary_conv)
from nasbnn_mm.ops.training import training_kernels
from nasbnn_mm.testing import LabelSample

SUPERNET_SCHEDULE = osp.join(
    osp.dirname(__file__), '../../configs/_base_/schedules/supernet_adam.py')


def supernet_optim_wrapper(model: nn.Module, lr: float) -> OptimWrapper:
    """The supernet configs' optimizer wrapper (``supernet_adam.py``, built
    by MMEngine as a training run builds it), at ``lr`` and without weight
    decay."""
    cfg = Config.fromfile(SUPERNET_SCHEDULE).optim_wrapper
    cfg.optimizer.update(lr=lr, weight_decay=0)
    return build_optim_wrapper(model, cfg)


def float_student_convs() -> ContextManager:
    """The students' convolutions as F.conv2d (not the popcount kernels)."""
    return mock.patch.object(dynamic_binary_conv, 'xnor_conv2d', F.conv2d)


def matmul_kernel_maps() -> ContextManager:
    """The kernel maps as PyTorch's matmul (not the extension's loops)."""

    def matmul(weight, kernel_map, k):
        return (weight.flatten(2) @ kernel_map).view(*weight.shape[:2], k, k)

    return mock.patch.object(dynamic_binary_conv, 'apply_kernel_map', matmul)


def separate_activations() -> ContextManager:
    """The blocks' residual add, RPReLU and RSign as three operations."""

    def separate(y, r, act, sign):
        out = act(y + r)
        return out, sign(out)

    return mock.patch.object(super_bnn, 'residual_rprelu_rsign', separate)


def no_lookups() -> ContextManager:
    """The Bi-Teacher's forward, every weight gradient and the students'
    data gradients by oneDNN's convolutions (no table lookups)."""
    return mock.patch.object(conv_operands, 'lookup_applies',
                             lambda *args: False)


def aten_batch_norm() -> ContextManager:
    """The supernet's batch norms by ``F.batch_norm`` (ATen's kernel)."""
    return mock.patch.object(dynamic_batch_norm, '_batch_norm_kernel_applies',
                             lambda *args: False)


@contextlib.contextmanager
def unfused_adam(optim: OptimWrapper) -> Iterator[None]:
    """Adam's update as a loop over the parameters (torch's CPU default)."""
    groups = optim.optimizer.param_groups
    fused = [group['fused'] for group in groups]
    for group in groups:
        group['fused'] = None
    try:
        yield
    finally:
        for group, value in zip(groups, fused):
            group['fused'] = value


@contextlib.contextmanager
def float32_operands(model: SandwichSupernet) -> Iterator[None]:
    """The step's float convolutions with float32 operands."""
    previous, model.conv_operand_dtype = model.conv_operand_dtype, 'float32'
    try:
        yield
    finally:
        model.conv_operand_dtype = previous


# what --ablate turns off: the students' convolutions on the popcount
# kernels, the fused add + RPReLU + RSign, the kernel maps' loops, the
# table lookups (Bi-Teacher forward, weight and data gradients), the batch
# norm kernel, all of the
# extension's training kernels (those included), the fused Adam update, or
# the bfloat16 operands of the float convolutions (the model is built with
# them for this one)
ABLATIONS: Dict[str, Callable[
    [SandwichSupernet, OptimWrapper], ContextManager]] = dict(
        xnor=lambda model, optim: float_student_convs(),
        fused_act=lambda model, optim: separate_activations(),
        kernel_map=lambda model, optim: matmul_kernel_maps(),
        lookup=lambda model, optim: no_lookups(),
        batch_norm=lambda model, optim: aten_batch_norm(),
        kernels=lambda model, optim: training_kernels(False),
        fused_adam=lambda model, optim: unfused_adam(optim),
        bf16_operands=lambda model, optim: float32_operands(model))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--space', default='nasbnn_in1k')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--size', type=int, default=64, help='H = W')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads; 0 = default')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='profile one more step: by op, by module, by backward node')
    parser.add_argument(
        '--conv-operand-dtype',
        default='float32',
        choices=['float32', 'bfloat16'],
        help='SandwichSupernet(conv_operand_dtype=...)')
    parser.add_argument(
        '--ablate',
        choices=sorted(ABLATIONS),
        help='time each run with this on and off (same subnets)')
    return parser.parse_args()


def trace_modules(model: nn.Module) -> None:
    """Wrap the forward of every outermost module of
    ``nasbnn_mm.models.layers`` (and every other leaf module) in a
    ``module::<Class>`` range."""
    ranges: List[record_function] = []

    def enter(module, args):
        ranges.append(record_function(f'module::{type(module).__name__}'))
        ranges[-1].__enter__()

    def leave(module, args, output):
        ranges.pop().__exit__(None, None, None)

    traced: List[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(f'{t}.') for t in traced):
            continue
        layer = type(module).__module__.startswith('nasbnn_mm.models.layers')
        if layer or not any(module.children()):
            traced.append(name)
            module.register_forward_pre_hook(enter)
            module.register_forward_hook(leave)


def print_profile(prof: profile, total_ms: float) -> None:
    """Op, module and backward-node tables of one profiled step."""
    print(prof.key_averages().table(
        sort_by='self_cpu_time_total', row_limit=25))
    groups: Dict[str, Dict[str, List[float]]] = dict(
        module=defaultdict(lambda: [0.0, 0]),
        backward=defaultdict(lambda: [0.0, 0]))
    prefixes = dict(
        module='module::', backward='autograd::engine::evaluate_function: ')
    for event in prof.events():
        for kind, prefix in prefixes.items():
            if event.name.startswith(prefix):
                row = groups[kind][event.name[len(prefix):]]
                row[0] += event.cpu_time_total / 1e3
                row[1] += 1
    titles = dict(
        module='forward by module kind', backward='backward by autograd node')
    for kind, rows in groups.items():
        print(f'\n{titles[kind]} (ms, % of the step, calls)')
        for name, (ms, calls) in sorted(
                rows.items(), key=lambda r: -r[1][0])[:15]:
            print(f'  {name:<40}{ms:>10.0f}{100 * ms / total_ms:>7.1f}%'
                  f'{calls:>7}')


def ablate(model: SandwichSupernet, batch: dict, optim: OptimWrapper,
           args: argparse.Namespace) -> None:
    """Two steps per run, ``args.ablate`` on and off (alternating which
    goes first), the same random subnets in both; prints the medians and
    the median per-run ratio off / on."""
    times: Dict[str, List[float]] = dict(on=[], off=[])
    for i in range(args.warmup + args.runs):
        arms = ('on', 'off') if i % 2 else ('off', 'on')
        for arm in arms:
            model.rng = random.Random(i)  # the same subnets in both arms
            off = ABLATIONS[args.ablate](model,
                                         optim) if arm == 'off' else None
            with off or contextlib.nullcontext():
                start = time.perf_counter()
                model.train_step(batch, optim)
            if i >= args.warmup:
                times[arm].append((time.perf_counter() - start) * 1e3)
    ratios = [b / a for a, b in zip(times['on'], times['off'])]
    result = dict(
        ablate=args.ablate,
        threads=torch.get_num_threads(),
        runs=args.runs,
        median_ms_on=round(statistics.median(times['on']), 1),
        median_ms_off=round(statistics.median(times['off']), 1),
        off_over_on=round(statistics.median(ratios), 3),
        off_over_on_range=[round(min(ratios), 3),
                           round(max(ratios), 3)])
    print(f'{args.ablate} on: {result["median_ms_on"]} ms, off: '
          f'{result["median_ms_off"]} ms per step (medians); off / on per '
          f'run {result["off_over_on"]} ({result["off_over_on_range"][0]}'
          f'-{result["off_over_on_range"][1]}) over {args.runs} runs')
    print(json.dumps(result))


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.ablate == 'bf16_operands':
        args.conv_operand_dtype = 'bfloat16'
    model = SandwichSupernet(
        backbone=dict(type='SuperBNN', search_space=args.space),
        conv_operand_dtype=args.conv_operand_dtype)
    optim = supernet_optim_wrapper(model, lr=5e-4)
    num_classes = model.space.num_classes
    batch = dict(
        inputs=torch.randn(args.batch, 3, args.size, args.size),
        data_samples=[LabelSample(i % num_classes) for i in range(args.batch)])
    model.train()
    if args.ablate:
        ablate(model, batch, optim, args)
        return
    times = []
    for i in range(args.warmup + args.runs):
        start = time.perf_counter()
        model.train_step(batch, optim)
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    result = dict(
        space=args.space,
        conv_operand_dtype=args.conv_operand_dtype,
        batch=args.batch,
        input_size=args.size,
        threads=torch.get_num_threads(),
        runs=args.runs,
        median_ms_per_step=round(statistics.median(times), 1),
        min_ms_per_step=round(min(times), 1))
    print(f'sandwich step ({args.space}, batch {args.batch}, '
          f'{args.size}x{args.size}, {result["threads"]} threads): '
          f'median {result["median_ms_per_step"]} ms, '
          f'min {result["min_ms_per_step"]} ms over {args.runs} steps')
    print(json.dumps(result))
    if args.profile:
        trace_modules(model)
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.train_step(batch, optim)
        print_profile(prof, (time.perf_counter() - start) * 1e3)


if __name__ == '__main__':
    main()
