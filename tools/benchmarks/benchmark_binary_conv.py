"""Forward + backward time of binary convolutions vs ``torch.nn.Conv2d``.

Every arm runs in the same process on the same input shape; arms are timed
round-robin (one iteration of each in turn) so that load from other
processes hits them alike. Prints a table and one JSON line.

Example:
    python tools/benchmarks/benchmark_binary_conv.py --runs 30
"""
import argparse
import json
import statistics
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn

from nasbnn_mm.models.layers import BinaryConv2d, DynamicBinaryConv2d, RSign


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--size', type=int, default=28, help='H = W')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--runs', type=int, default=30)
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads; 0 = default')
    return parser.parse_args()


def make_step(module: nn.Module, x: torch.Tensor,
              **kwargs) -> Callable[[], None]:
    """One training step of ``module`` on ``x``: forward and backward."""
    grad = torch.randn_like(module(x, **kwargs))

    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x, **kwargs).backward(grad)

    return step


def build_arms(args: argparse.Namespace) -> Dict[str, Callable[[], None]]:
    n, c, s = args.batch, args.channels, args.size
    half = c // 2
    x_full = torch.randn(n, c, s, s, requires_grad=True)
    x_half = torch.randn(n, half, s, s, requires_grad=True)
    dynamic = DynamicBinaryConv2d(c, c, [3, 5], groups=[1, 2])
    return {
        'nn.Conv2d 3x3':
        make_step(nn.Conv2d(c, c, 3, padding=1, bias=False), x_full),
        'BinaryConv2d 3x3 (no input sign)':
        make_step(
            BinaryConv2d(c, c, 3, padding=1, bias=False, binarize_input=False),
            x_full),
        'DynamicBinaryConv2d k=3 of [3,5], g=1':
        make_step(dynamic, x_full, out_channels=c, kernel_size=3, groups=1),
        'RSign + DynamicBinaryConv2d k=3, g=1':
        make_step(nn.Sequential(RSign(c), _Active(dynamic, c, 3, 1)), x_full),
        'nn.Conv2d 3x3 half width, g=2':
        make_step(
            nn.Conv2d(half, half, 3, padding=1, groups=2, bias=False), x_half),
        'DynamicBinaryConv2d half width, k=3, g=2':
        make_step(dynamic, x_half, out_channels=half, kernel_size=3, groups=2),
    }


class _Active(nn.Module):
    """A dynamic convolution fixed to one setting, for ``nn.Sequential``."""

    def __init__(self, conv: DynamicBinaryConv2d, out_channels: int,
                 kernel_size: int, groups: int) -> None:
        super().__init__()
        self.conv = conv
        self.setting = (out_channels, kernel_size, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, *self.setting)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    arms = build_arms(args)
    times: Dict[str, List[float]] = {name: [] for name in arms}
    for _ in range(args.warmup):
        for step in arms.values():
            step()
    for _ in range(args.runs):
        for name, step in arms.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    baselines = {
        name: ('nn.Conv2d 3x3 half width, g=2'
               if 'half' in name else 'nn.Conv2d 3x3')
        for name in arms
    }
    width = max(map(len, arms))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'input ({args.batch}, {args.channels}, {args.size}, {args.size}),'
          f' median of {args.runs} runs (forward + backward)')
    print(f'{"arm":<{width}}  {"ms":>8}  {"x nn.Conv2d":>11}')
    ratios = {}
    for name, ms in medians.items():
        ratios[name] = ms / medians[baselines[name]]
        print(f'{name:<{width}}  {ms:8.2f}  {ratios[name]:11.2f}')
    print(
        json.dumps(
            dict(
                torch=torch.__version__,
                threads=torch.get_num_threads(),
                input=[args.batch, args.channels, args.size, args.size],
                runs=args.runs,
                median_ms={
                    k: round(v, 3)
                    for k, v in medians.items()
                },
                ratio_vs_conv2d={
                    k: round(v, 3)
                    for k, v in ratios.items()
                })))


if __name__ == '__main__':
    main()
