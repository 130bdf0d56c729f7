"""Time of one sandwich-rule training step of the NAS-BNN supernet.

One step = the Bi-Teacher (largest subnet, full-precision weights) plus the
smallest and two random subnets, each forward + backward, then one Adam
step: what ``SandwichSupernet.train_step`` does every iteration. Prints the
median over ``--runs`` steps (after ``--warmup``) and one JSON line.

Example:
    python tools/benchmarks/benchmark_sandwich_step.py \\
        --space nasbnn_in1k --batch 32 --size 64
"""
import argparse
import json
import statistics
import time
from collections import defaultdict
from typing import Dict, List

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from torch.profiler import ProfilerActivity, profile, record_function

from nasbnn_mm.models.algorithms import SandwichSupernet
from nasbnn_mm.testing import LabelSample


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


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SandwichSupernet(
        backbone=dict(type='SuperBNN', search_space=args.space))
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=5e-4))
    num_classes = model.space.num_classes
    batch = dict(
        inputs=torch.randn(args.batch, 3, args.size, args.size),
        data_samples=[LabelSample(i % num_classes) for i in range(args.batch)])
    model.train()
    times = []
    for i in range(args.warmup + args.runs):
        start = time.perf_counter()
        model.train_step(batch, optim)
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    result = dict(
        space=args.space,
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
