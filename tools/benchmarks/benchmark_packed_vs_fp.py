"""Packed NAS-BNN vs the fp32 networks a CPU user would pick instead.

Arms, all in one process and timed round-robin (one iteration of every arm
and thread count in turn, after warm-up, so load from other processes hits
them alike):

- packed NAS-BNN presets (default A and B; untrained weights, which do not
  change the time) with their FP classifier: :meth:`PackedNASBNN.logits`
  (the fused forward: one kernel call per block);
- torchvision MobileNetV3-Large, MobileNetV2 and ResNet-18 in fp32
  (``weights=None``), channels_last, under ``torch.inference_mode``.

Each batch size and ``--threads`` count is one pass over all arms (thread
counts are not mixed within a pass: OpenMP workers left spinning by a
multi-threaded arm would slow the single-threaded ones). The machine's
load average is recorded before and after each pass. Ratios to the
reference arm are medians of per-round ratios (paired), with their
quartiles; thread scaling is the ratio of the medians of two passes.
``--repeat K`` runs the whole sequence of passes K times, so a burst of
load from elsewhere hits one repetition: the summary gives, per arm, the
median and range over the repetitions of each pass's ratio and of the
thread scaling (its passes are adjacent within a repetition).

Example:
    python tools/benchmarks/benchmark_packed_vs_fp.py --threads 1 2 \\
        --batch 1 8 --out packed_vs_fp.json
"""
import argparse
import json
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
from bench_utils import (FP_ARMS, cpu_info, fp32_reference, load_average,
                         packed_classifier, spread, summarize,
                         time_round_robin)

from nasbnn_mm.utils.errors import run_tool

REFERENCE = 'MobileNetV3-Large'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--presets', nargs='+', default=['A', 'B'])
    parser.add_argument('--threads', nargs='+', type=int, default=[1])
    parser.add_argument('--batch', nargs='+', type=int, default=[1])
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument(
        '--repeat',
        type=int,
        default=1,
        help='run the sequence of passes this many times')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--clock',
        choices=('wall', 'cpu'),
        default='wall',
        help='cpu: process CPU time, robust to load from other processes; '
        'single-threaded runs only')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f'--repeat {args.repeat}: must be >= 1')
    if args.runs < 10:
        parser.error(f'--runs {args.runs}: use >= 10 for a stable median')
    for name, values in (('threads', args.threads), ('batch', args.batch),
                         ('input-size', [args.input_size])):
        for v in values:
            if v < 1:
                parser.error(f'--{name} {v}: must be >= 1')
    if args.clock == 'cpu' and args.threads != [1]:
        parser.error('--clock cpu measures single-threaded runs only '
                     '(--threads 1)')
    return args


def inference(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run in inference mode."""

    def run() -> object:
        with torch.inference_mode():
            return fn()

    return run


def build_models(args: argparse.Namespace) -> Dict[str, Callable]:
    """Name -> callable of an input batch, for every arm."""
    models: Dict[str, Callable] = {}
    for preset in args.presets:
        packed = packed_classifier(
            preset, size=args.input_size, seed=args.seed)
        models[f'NAS-BNN-{preset} packed'] = packed.logits
    for name in FP_ARMS:
        models[f'{name} fp32'] = fp32_reference(name, args.seed)
    return models


def bench_pass(args: argparse.Namespace, models: Dict[str, Callable],
               batch: int, threads: int) -> dict:
    """All arms at one batch size and thread count, round-robin."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(args.seed)
    size = args.input_size
    x = torch.randn(batch, 3, size, size, generator=gen)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    arms = {}
    for name, model in models.items():
        inp = x_cl if name.endswith('fp32') else x
        arms[name] = inference(lambda m=model, i=inp: m(i))
    load_before = load_average()
    clock = time.perf_counter if args.clock == 'wall' else time.process_time
    samples = time_round_robin(arms, args.warmup, args.runs, clock)
    load_after = load_average()
    ref = samples[f'{REFERENCE} fp32']
    rows = [
        dict(
            arm=name,
            ms=summarize(sec),
            vs_reference=spread([a / b for a, b in zip(sec, ref)]))
        for name, sec in samples.items()
    ]
    return dict(
        batch=batch,
        threads=threads,
        input=f'{batch}x3x{size}x{size}',
        clock=args.clock,
        load_before=load_before,
        load_after=load_after,
        rows=rows)


def print_pass(res: dict) -> None:
    print(f'\n## batch {res["batch"]} ({res["input"]}), {res["threads"]} '
          f'thread(s), {res["clock"]} clock, load average '
          f'{res["load_before"]} -> {res["load_after"]}')
    print(f'{"arm":<28}{"median ms":>11}{"q1-q3 ms":>17}{"min ms":>9}'
          f'{"/ " + REFERENCE + " (q1-q3)":>32}')
    for r in res['rows']:
        ms, ratio = r['ms'], r['vs_reference']
        print(f'{r["arm"]:<28}{ms["median"]:>11.2f}'
              f'{ms["q1"]:>8.2f}-{ms["q3"]:<8.2f}{ms["min"]:>9.2f}'
              f'{ratio["median"]:>19.2f} ({ratio["q1"]:.2f}-'
              f'{ratio["q3"]:.2f})')


def scaling(passes: List[dict]) -> List[dict]:
    """Speed-up of each arm over its run at the first thread count (ratio
    of the medians of the two passes of a repetition) per batch size:
    median and range over the repetitions."""
    ratios = {}
    for p in passes:
        first = next(
            q for q in passes
            if (q['repeat'], q['batch']) == (p['repeat'], p['batch']))
        base = {r['arm']: r['ms']['median'] for r in first['rows']}
        for r in p['rows']:
            key = (r['arm'], p['batch'], p['threads'])
            ratios.setdefault(key,
                              []).append(base[r['arm']] / r['ms']['median'])
    return [
        dict(arm=arm, batch=batch, threads=threads, speedup=spread(values))
        for (arm, batch, threads), values in ratios.items()
    ]


def summary(passes: List[dict]) -> List[dict]:
    """Per arm, batch and thread count: the median time and the ratio to
    the reference of each repetition's pass, summarized (median, range)."""
    groups = {}
    for p in passes:
        for r in p['rows']:
            key = (r['arm'], p['batch'], p['threads'])
            ms, ratio = groups.setdefault(key, ([], []))
            ms.append(r['ms']['median'])
            ratio.append(r['vs_reference']['median'])
    return [
        dict(
            arm=arm,
            batch=batch,
            threads=threads,
            ms=spread(ms),
            vs_reference=spread(ratio))
        for (arm, batch, threads), (ms, ratio) in groups.items()
    ]


def row_label(row: dict) -> str:
    return f'{row["arm"]:<28} batch {row["batch"]:<3} {row["threads"]} threads'


def median_range(s: Dict[str, float], width: int = 0) -> str:
    """``median (min-max)`` of a :func:`spread`."""
    return f'{s["median"]:>{width}.2f} ({s["min"]:.2f}-{s["max"]:.2f})'


def main(argv: Optional[List[str]] = None) -> int:
    """Exit status: 0, or 2 after a user error (e.g. an unknown preset),
    printed as one line."""
    args = parse_args(argv)
    return run_tool('benchmark_packed_vs_fp.py', lambda: run(args))


def run(args: argparse.Namespace) -> int:
    info = cpu_info()
    print(json.dumps(info))
    models = build_models(args)
    results = dict(
        cpu=info,
        clock=args.clock,
        runs=args.runs,
        warmup=args.warmup,
        reference=REFERENCE,
        passes=[])
    for repeat in range(args.repeat):
        for batch in args.batch:
            for threads in args.threads:
                res = dict(
                    repeat=repeat, **bench_pass(args, models, batch, threads))
                results['passes'].append(res)
                print_pass(res)
    results['summary'] = summary(results['passes'])
    print(f'\n## over {args.repeat} repetition(s): median (min-max) of the '
          'passes')
    for r in results['summary']:
        print(f'{row_label(r)} {median_range(r["ms"], 8)} ms  / {REFERENCE} '
              f'{median_range(r["vs_reference"])}')
    if len(args.threads) > 1:
        results['scaling'] = scaling(results['passes'])
        print(f'\n## speed-up over {args.threads[0]} thread(s) (ratio of '
              'the medians of a repetition\'s passes; median (min-max))')
        for r in results['scaling']:
            print(f'{row_label(r)} {median_range(r["speedup"], 6)}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
        print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
