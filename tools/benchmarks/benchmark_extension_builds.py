"""Two builds of the kernels (``nasbnn_mm._ext``) timed side by side.

Both shared objects are loaded into one process and take turns as the
extension every kernel call uses, on the same packed NAS-BNN models
(untrained presets with their FP classifier, :meth:`PackedNASBNN.logits`),
so a code change is measured paired, round by round, without a second
process or machine state between the arms. The order of the two builds is
swapped every round (ABBA...): in a fixed order the build timed second ran
~2 % faster on this project's 2-core VM whatever it was (the same build in
both arms measured 1.022), because the first call of a round warms the
caches for the second. Give the same file twice for that A/A check.

Each round runs, per preset and build, one untimed forward and ``--calls``
timed ones (their minimum is the round's time). Reported per preset: each
build's median over the rounds, the median and quartiles of the per-round
ratio first build / second build (> 1: the second is faster), and whether
the two builds' logits are bitwise equal (a line warns when they are not:
a faster build that computes something else is not a speed-up).

Build the old version into its own directory first, e.g.::

    git worktree add /tmp/old <commit> && cd /tmp/old && \\
        python setup.py build_ext --inplace
    python tools/benchmarks/benchmark_extension_builds.py \\
        /tmp/old/nasbnn_mm/_ext*.so nasbnn_mm/_ext*.so --presets A B
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os.path as osp
import sys
import time
from types import ModuleType
from typing import Dict, List, Optional

import torch
from bench_utils import (cpu_info, load_average, packed_classifier, spread,
                         summarize)

from nasbnn_mm.ops import binary_conv
from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.errors import run_tool

# What the packed forward calls; both builds must have them.
REQUIRED = ('binary_block', 'quantized_stem', 'pack_activation',
            'block_weight', 'kernel_path')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('builds', nargs=2, help='two built extensions (.so)')
    parser.add_argument('--presets', nargs='+', default=['A', 'B'])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=60)
    parser.add_argument('--calls', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    for name in ('threads', 'input_size', 'rounds', 'calls'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} {getattr(args, name)}: '
                         'must be >= 1')
    for path in args.builds:
        if not osp.isfile(path):
            parser.error(f'{path}: no such file (a built nasbnn_mm._ext)')
    return args


def load_build(path: str) -> ModuleType:
    """Load the extension at ``path`` as a module of its own."""
    loader = importlib.machinery.ExtensionFileLoader('nasbnn_mm._ext', path)
    spec = importlib.util.spec_from_file_location(
        'nasbnn_mm._ext', path, loader=loader)
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError as e:
        raise UserError(f'{path}: cannot be loaded as nasbnn_mm._ext ({e})')
    missing = [f for f in REQUIRED if not hasattr(module, f)]
    if missing:
        raise UserError(f'{path}: not a nasbnn_mm._ext build (missing '
                        f'{", ".join(missing)})')
    return module


@torch.no_grad()
def same_outputs(model: torch.nn.Module, builds: List[ModuleType],
                 x: torch.Tensor) -> bool:
    """Whether ``model``'s logits are bitwise equal on both builds."""
    previous = binary_conv._ext
    try:
        outs = []
        for build in builds:
            binary_conv._ext = build
            outs.append(model.logits(x))
    finally:
        binary_conv._ext = previous
    return torch.equal(outs[0], outs[1])


def time_builds(models: Dict[str, torch.nn.Module], builds: List[ModuleType],
                x: torch.Tensor, rounds: int,
                calls: int) -> Dict[str, List[List[float]]]:
    """Per preset, per build, the seconds of every round (the minimum of
    its ``calls`` timed forwards), the builds' order swapped every round.
    """
    times = {name: [[], []] for name in models}
    previous = binary_conv._ext
    try:
        with torch.inference_mode():
            for r in range(rounds):
                order = (0, 1) if r % 2 == 0 else (1, 0)
                for name, model in models.items():
                    for b in order:
                        binary_conv._ext = builds[b]
                        model.logits(x)
                        best = float('inf')
                        for _ in range(calls):
                            start = time.perf_counter()
                            model.logits(x)
                            best = min(best, time.perf_counter() - start)
                        times[name][b].append(best)
    finally:
        binary_conv._ext = previous
    return times


def main(argv: Optional[List[str]] = None) -> int:
    """Exit status: 0, or 2 after a user error (an unloadable build, an
    unknown preset), printed as one line."""
    args = parse_args(argv)
    return run_tool('benchmark_extension_builds.py', lambda: run(args))


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    builds = [load_build(path) for path in args.builds]
    models = {
        p: packed_classifier(p, size=args.input_size, seed=args.seed)
        for p in args.presets
    }
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(1, 3, args.input_size, args.input_size, generator=gen)
    equal = {name: same_outputs(m, builds, x) for name, m in models.items()}
    load_before = load_average()
    times = time_builds(models, builds, x, args.rounds, args.calls)
    load_after = load_average()
    rows = []
    for name, (first, second) in times.items():
        rows.append(
            dict(
                preset=name,
                outputs_equal=equal[name],
                first_ms=summarize(first),
                second_ms=summarize(second),
                first_over_second=spread(
                    [a / b for a, b in zip(first, second)])))
    print(f'## {args.builds[0]} (first) vs {args.builds[1]} (second), '
          f'{args.threads} thread(s), {args.rounds} rounds, load average '
          f'{load_before} -> {load_after}')
    print(f'{"preset":<8}{"first ms":>10}{"second ms":>11}'
          f'{"first / second (q1-q3)":>28}')
    for r in rows:
        ratio = r['first_over_second']
        print(f'{r["preset"]:<8}{r["first_ms"]["median"]:>10.3f}'
              f'{r["second_ms"]["median"]:>11.3f}{ratio["median"]:>14.3f} '
              f'({ratio["q1"]:.3f}-{ratio["q3"]:.3f})')
        if not r['outputs_equal']:
            print(f'WARNING: preset {r["preset"]}: the two builds\' logits '
                  'differ (not the same computation)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    builds=args.builds,
                    machine=cpu_info(),
                    threads=args.threads,
                    rounds=args.rounds,
                    calls=args.calls,
                    load_average=[load_before, load_after],
                    rows=rows),
                f,
                indent=2)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
