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

import torch
from mmengine.optim import OptimWrapper

from nasbnn_mm.models.algorithms import SandwichSupernet


class _Sample:
    """The part of an MMPretrain ``DataSample`` the algorithm reads."""

    def __init__(self, label: int) -> None:
        self.gt_label = torch.tensor([label])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--space', default='nasbnn_in1k')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--size', type=int, default=64, help='H = W')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads; 0 = default')
    return parser.parse_args()


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
        data_samples=[_Sample(i % num_classes) for i in range(args.batch)])
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


if __name__ == '__main__':
    main()
