"""Speed of the bit-packed binary kernels vs fp32 PyTorch on one CPU thread.

Sections (all arms of a row run in the same process, round-robin: one
iteration of each arm in turn, after warm-up, so load from other processes
hits them alike; the median of ``--runs`` is reported):

- ``gemm``: binary GEMM of packed operands vs ``torch.mm`` fp32;
- ``conv``: binary 3×3 convolutions (>= 128 input channels) vs
  ``F.conv2d`` fp32 on the same shape and groups;
- ``preset``: a Table-6 preset end to end (batch 1) packed vs the same
  subnet's eager fp32 :class:`NASBNN` (``training_kernels(False)``: every
  op in PyTorch), vs the eager model as it runs by default (the extension's
  RSign, RPReLU, weight normalization and its binary convolutions'
  forward on the popcount kernels, ``models/layers/xnor_conv.py``), and vs
  a "frozen" fp32 copy whose binarized weights are computed once, i.e.
  plain conv layers;
- ``spearman``: counted OPs vs packed latency over random subnets;
- ``sizes``: packed file sizes of presets A-F.

Prints the CPU flags and the kernel path, a table per section and, with
``--out``, writes everything as JSON.

Example:
    python tools/benchmarks/benchmark_packed_conv.py --out bench.json
"""
import argparse
import copy
import json
import os
import random
import statistics
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from bench_utils import cpu_info, time_round_robin, untrained

from nasbnn_mm.deploy import pack_nasbnn, save_packed
from nasbnn_mm.models.backbones.nasbnn import NASBNN
from nasbnn_mm.models.layers import BinaryConv2d
from nasbnn_mm.models.layers.binary_conv import binary_conv_weight
from nasbnn_mm.nas import (DEFAULT_SPACE, PRESETS, SearchSpace, count_arch_ops,
                           sample_random)
from nasbnn_mm.ops import binary_conv as ops
from nasbnn_mm.ops.training import training_kernels

SECTIONS = ('gemm', 'conv', 'preset', 'spearman', 'sizes')
# (M, K, N): pixels x input channels x output channels of 1×1 convs.
GEMM_SHAPES = ((3136, 256, 256), (784, 512, 512), (196, 1024, 1024),
               (196, 768, 1536), (49, 1536, 1536))
# (C_in = C_out, H = W, groups, stride): 3×3 layers of NAS-BNN's widths.
CONV_SHAPES = ((128, 56, 1, 1), (256, 28, 1, 1), (512, 14, 1, 1),
               (256, 56, 1, 2), (384, 28, 2, 1), (768, 14, 4, 1),
               (768, 14, 8, 1), (1536, 7, 16, 1))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--sections',
        nargs='+',
        default=list(SECTIONS),
        choices=SECTIONS,
        help='what to run')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument(
        '--paths',
        nargs='+',
        help='kernel paths timed in gemm/conv (default: all available)')
    parser.add_argument('--preset', default='B')
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument(
        '--subnets',
        type=int,
        default=12,
        help='random subnets of the spearman section')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    if args.runs < 20:
        parser.error(f'--runs {args.runs}: use >= 20 for a stable median')
    if args.subnets < 10:
        parser.error(f'--subnets {args.subnets}: use >= 10')
    return args


def time_arms(arms: Dict[str, Callable[[], object]], warmup: int,
              runs: int) -> Dict[str, float]:
    """Median seconds of each arm, timed round-robin."""
    times = time_round_robin(arms, warmup, runs)
    return {name: statistics.median(t) for name, t in times.items()}


def with_path(path: str, fn: Callable[[], object]) -> Callable[[], object]:

    def run() -> object:
        ops.set_kernel_path(path)
        return fn()

    return run


def bench_gemm(args: argparse.Namespace, paths: Sequence[str]) -> List[dict]:
    rows = []
    gen = torch.Generator().manual_seed(args.seed)
    for m, k, n in GEMM_SHAPES:
        a = torch.randn(m, k, generator=gen)
        b = torch.randn(n, k, generator=gen)
        bt = b.T.contiguous()
        pa = ops.pack_activation(a.view(m, k, 1, 1)).view(m, -1)
        pb = ops.block_weight(
            ops.pack_activation(b.view(n, k, 1, 1)).view(n, 1, 1, -1))
        arms = {'fp32': lambda: torch.mm(a, bt)}
        for p in paths:
            arms[p] = with_path(p, lambda: ops.binary_gemm(pa, pb, k, n))
        arms['pack+avx'] = with_path(
            paths[-1], lambda: ops.binary_gemm(
                ops.pack_activation(a.view(m, k, 1, 1)).view(m, -1), pb, k, n))
        t = time_arms(arms, args.warmup, args.runs)
        rows.append(
            dict(
                shape=f'M{m} K{k} N{n}',
                ms={
                    name: v * 1e3
                    for name, v in t.items()
                },
                speedup={
                    name: t['fp32'] / v
                    for name, v in t.items() if name != 'fp32'
                }))
    return rows


def bench_conv(args: argparse.Namespace, paths: Sequence[str]) -> List[dict]:
    rows = []
    gen = torch.Generator().manual_seed(args.seed)
    for c, hw, groups, stride in CONV_SHAPES:
        x = torch.randn(1, c, hw, hw, generator=gen)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        weight = torch.randn(c, c // groups, 3, 3, generator=gen)
        scale, bias = torch.rand(c), torch.randn(c)
        act = (torch.randn(c), torch.rand(c), torch.randn(c))
        blocked = ops.block_weight(ops.pack_weight(weight, groups), groups)
        xp = ops.pack_activation(x_cl, groups)
        arms = {
            'fp32': lambda: F.conv2d(x, weight, None, stride, 1, 1, groups)
        }
        for p in paths:
            arms[p] = with_path(
                p, lambda: ops.binary_conv2d(xp, blocked, c, c, stride, 1))

        def fused() -> torch.Tensor:
            # pack the float input + conv + BN affine + RPReLU
            return ops.binary_conv2d(
                ops.pack_activation(x_cl, groups),
                blocked,
                c,
                c,
                stride,
                1,
                scale=scale,
                bias=bias,
                act=act)

        arms['pack+fused'] = with_path(paths[-1], fused)
        t = time_arms(arms, args.warmup, args.runs)
        rows.append(
            dict(
                shape=f'C{c} {hw}x{hw} g{groups} s{stride}',
                ms={
                    name: v * 1e3
                    for name, v in t.items()
                },
                speedup={
                    name: t['fp32'] / v
                    for name, v in t.items() if name != 'fp32'
                }))
    return rows


@torch.no_grad()
def frozen_fp32(model: NASBNN) -> nn.Module:
    """A copy whose binary convs are plain ``nn.Conv2d`` holding the
    binarized weight (computed once): the fp32 network of the same shape
    without the per-forward weight normalization."""
    frozen = copy.deepcopy(model)
    for name, module in list(frozen.named_modules()):
        if isinstance(module, BinaryConv2d):
            conv = nn.Conv2d(module.in_channels, module.out_channels,
                             module.kernel_size, module.stride, module.padding,
                             module.dilation, module.groups, module.bias
                             is not None)
            conv.weight.copy_(
                binary_conv_weight(module.weight, True, module.weight_norm,
                                   module.bi_transform))
            if module.bias is not None:
                conv.bias.copy_(module.bias)
            parent, _, child = name.rpartition('.')
            setattr(frozen.get_submodule(parent), child, conv)
    return frozen.eval()


def fp32_eager(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` with PyTorch operations only."""
    with training_kernels(False):
        return model(x)


@torch.no_grad()
def bench_preset(args: argparse.Namespace) -> dict:
    size = args.input_size
    model = untrained(args.preset, DEFAULT_SPACE, size, args.seed)
    frozen = frozen_fp32(model)
    packed = pack_nasbnn(model)
    x = torch.randn(1, 3, size, size)
    runs = args.runs
    t = time_arms(
        {
            'fp32 eager (NASBNN)': lambda: fp32_eager(model, x),
            'eager, extension kernels': lambda: model(x),
            'fp32 frozen weights': lambda: frozen(x),
            'packed': lambda: packed(x)
        }, args.warmup, runs)
    space = SearchSpace.from_config(DEFAULT_SPACE)
    return dict(
        preset=args.preset,
        input=f'1x3x{size}x{size}',
        ops_m=count_arch_ops(model.arch, space, size).ops / 1e6,
        kernel_path=ops.kernel_path(),
        ms={
            name: v * 1e3
            for name, v in t.items()
        },
        speedup_vs_eager=t['fp32 eager (NASBNN)'] / t['packed'],
        speedup_vs_eager_kernels=t['eager, extension kernels'] / t['packed'],
        speedup_vs_frozen=t['fp32 frozen weights'] / t['packed'])


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of ranks (ties averaged)."""

    def ranks(values: Sequence[float]) -> List[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and \
                    values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma)**2 for x in ra) * sum((y - mb)**2 for y in rb))**0.5
    return cov / var


@torch.no_grad()
def bench_spearman(args: argparse.Namespace) -> dict:
    space = SearchSpace.from_config(DEFAULT_SPACE)
    rng = random.Random(args.seed)
    size = args.input_size
    x = torch.randn(1, 3, size, size)
    rows = []
    for i in range(args.subnets):
        arch = sample_random(space, rng)
        packed = pack_nasbnn(
            untrained(arch.to_dict(), DEFAULT_SPACE, size, args.seed))
        t = time_arms({'packed': lambda: packed(x)}, args.warmup, args.runs)
        rows.append(
            dict(
                arch=arch.to_dict(),
                ops_m=count_arch_ops(arch, space, size).ops / 1e6,
                ms=t['packed'] * 1e3))
    return dict(
        subnets=rows,
        rho=spearman([r['ops_m'] for r in rows], [r['ms'] for r in rows]))


def bench_sizes(args: argparse.Namespace) -> List[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESETS:
            packed = pack_nasbnn(untrained(name, DEFAULT_SPACE, 64, 0))
            path = os.path.join(tmp, f'{name}.pth')
            file_bytes = save_packed(packed, path)
            float_bytes = sum(
                t.numel() * t.element_size()
                for t in packed.float_model().state_dict().values())
            rows.append(
                dict(
                    preset=name,
                    file_bytes=file_bytes,
                    float_backbone_bytes=float_bytes,
                    **packed.size_report()))
    return rows


def print_table(title: str, rows: List[dict]) -> None:
    print(f'\n## {title}')
    names = list(rows[0]['ms'])
    print(f'{"shape":<24}' + ''.join(f'{n + " ms":>16}' for n in names) +
          ''.join(f'{"x " + n:>14}' for n in names[1:]))
    for row in rows:
        print(f'{row["shape"]:<24}' + ''.join(f'{row["ms"][n]:>16.3f}'
                                              for n in names) +
              ''.join(f'{row["speedup"][n]:>14.1f}' for n in names[1:]))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    info = cpu_info()
    paths = args.paths or info['available_paths']
    print(json.dumps(info))
    results: Dict[str, object] = dict(
        cpu=info, runs=args.runs, warmup=args.warmup)
    if 'gemm' in args.sections:
        results['gemm'] = bench_gemm(args, paths)
        print_table('binary GEMM vs fp32 torch.mm (1 thread)', results['gemm'])
    if 'conv' in args.sections:
        results['conv'] = bench_conv(args, paths)
        print_table('binary 3x3 conv vs fp32 F.conv2d (1 thread)',
                    results['conv'])
    ops.set_kernel_path('auto')
    if 'preset' in args.sections:
        results['preset'] = res = bench_preset(args)
        print(f'\n## preset {res["preset"]} {res["input"]} '
              f'({res["ops_m"]:.1f}M OPs), path {res["kernel_path"]}')
        for name, ms in res['ms'].items():
            print(f'{name:<28}{ms:>10.2f} ms')
        print(f'speedup vs fp32 eager {res["speedup_vs_eager"]:.1f}x, vs '
              f'eager with the kernels '
              f'{res["speedup_vs_eager_kernels"]:.1f}x, vs frozen fp32 '
              f'{res["speedup_vs_frozen"]:.1f}x')
    if 'spearman' in args.sections:
        results['spearman'] = res = bench_spearman(args)
        print(f'\n## OPs vs packed latency, {len(res["subnets"])} random '
              f'subnets: Spearman rho = {res["rho"]:.3f}')
        for row in res['subnets']:
            print(f'{row["ops_m"]:>8.1f}M OPs {row["ms"]:>9.2f} ms')
    if 'sizes' in args.sections:
        results['sizes'] = rows = bench_sizes(args)
        print('\n## packed sizes (untrained weights; sizes do not depend '
              'on them)')
        print(f'{"preset":<8}{"file MB":>10}{"float MB":>10}'
              f'{"bin fp32 MB":>13}{"bin packed MB":>15}{"ratio":>8}'
              f'{"w/ affine":>11}')
        for r in rows:
            print(f'{r["preset"]:<8}{r["file_bytes"] / 1e6:>10.2f}'
                  f'{r["float_backbone_bytes"] / 1e6:>10.2f}'
                  f'{r["fp32_bytes"] / 1e6:>13.2f}'
                  f'{r["packed_bytes"] / 1e6:>15.3f}{r["ratio"]:>8.1f}'
                  f'{r["ratio_with_affine"]:>11.1f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
        print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
