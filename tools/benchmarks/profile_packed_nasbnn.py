"""Per-layer profile of a packed NAS-BNN on the CPU: where the time goes.

Runs :meth:`PackedNASBNN.logits` of an untrained preset (the weights do
not change the time) and splits each forward, with one kernel call per
block (``CHAIN_BLOCKS`` off; the plain forward runs the blocks in one
call), into:

- every binary block or convolution kernel call: its C++ time, its binary
  ops (BOPs: one per binary MAC, the paper's count) and the kernel's
  achieved BOPs per second;
- the other kernel calls (the folded stem, ``quantized_stem``, or the
  float stem's fused RPReLU and packing; packing where a block runs
  alone; the pooling and classifier, ``classifier_head``);
- everything outside the kernels in one row (Python, the kernel cache's
  checks; the float stem's convolution and BN where it is not folded).

With ``--between fp32`` each timed forward runs right after the fp32
reference networks of ``benchmark_packed_vs_fp.py`` (MobileNetV3-Large,
MobileNetV2, ResNet-18; not timed), so the caches are as that benchmark's
round-robin leaves them; the default times back-to-back forwards (warm
caches).

Kernel calls are timed by a stand-in for the extension module that wraps
each call with ``time.perf_counter``. It adds a few microseconds per
call, so the uninstrumented forward is timed round-robin with the
instrumented one and both totals are reported. A
``torch.profiler`` pass lists the ATen operators by self time (what the
stem and the rest consist of). The machine's load average is recorded.

Example:
    python tools/benchmarks/profile_packed_nasbnn.py --preset B \\
        --threads 1 --batch 1 --between fp32 --out profile_b.json
"""
import argparse
import json
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
from bench_utils import (cpu_info, fp32_networks, load_average,
                         packed_classifier, summarize, time_round_robin)
from torch.profiler import ProfilerActivity, profile

from nasbnn_mm.ops import binary_conv as ops


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='B')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument(
        '--stat',
        choices=('median', 'min'),
        default='median',
        help='statistic of the runs per row (min: on a loaded machine)')
    parser.add_argument(
        '--between',
        choices=('nothing', 'fp32'),
        default='nothing',
        help='run before each timed forward (fp32: the fp32 reference '
        'networks, as in benchmark_packed_vs_fp.py\'s round-robin)')
    parser.add_argument(
        '--top-ops', type=int, default=12, help='ATen ops listed')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    if args.runs < 10:
        parser.error(f'--runs {args.runs}: use >= 10 for a stable median')
    return args


class Event:
    """One timed kernel call (``name`` the extension function); binary
    convolution kernels carry their ``shape`` and ``bops``."""

    def __init__(self, name: str, start: float, end: float) -> None:
        self.name, self.start, self.end = name, start, end
        self.shape = ''
        self.bops = 0

    @property
    def seconds(self) -> float:
        return self.end - self.start


def conv_info(name: str, args: tuple, kwargs: dict, result) -> tuple:
    """Shape label and BOPs of an extension ``binary_conv2d`` or
    ``binary_block`` call (``('', 0)`` for other functions)."""
    if name not in ('binary_conv2d', 'binary_block'):
        return '', 0
    out = result[0]
    pixels = out.shape[0] * out.shape[2] * out.shape[3]
    where = f'@{out.shape[2]}x{out.shape[3]}'
    if name == 'binary_conv2d':
        x, weight, cin, cout = args[:4]
        stride = args[4] if len(args) > 4 else kwargs.get('stride', 1)
        groups, k = weight.shape[0], weight.shape[2]
        return (f'{cin}->{cout} k{k} g{groups} s{stride} {where}',
                pixels * cout * (cin // groups) * k * k)
    x, residual, weight1, stride = args[:4]
    c, cout = residual.shape[1], out.shape[1]
    groups, k = weight1.shape[0], weight1.shape[2]
    return (f'{c}->{cout} k{k} g{groups} s{stride} {where} block',
            pixels * c * (c // groups * k * k + cout))


class TimedExt:
    """Stands in for the extension module: times every function call.

    Args:
        ext: The loaded ``nasbnn_mm._ext``.
        events (list): Receives an :class:`Event` per call.
    """

    def __init__(self, ext, events: List[Event]) -> None:
        self._ext = ext
        self._events = events

    def __getattr__(self, name: str):
        fn = getattr(self._ext, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            event = Event(name, start, time.perf_counter())
            event.shape, event.bops = conv_info(name, args, kwargs, out)
            self._events.append(event)
            return out

        return timed


class Instrument:
    """Records the kernel calls of a forward. Use as a context manager;
    ``events`` holds what was recorded since :meth:`reset`."""

    def __init__(self) -> None:
        self.events: List[Event] = []
        self._ext = None

    def __enter__(self) -> 'Instrument':
        self._ext = ops.load_ext()
        ops._ext = TimedExt(self._ext, self.events)
        return self

    def __exit__(self, *exc) -> None:
        ops._ext = self._ext

    def reset(self) -> None:
        self.events.clear()


def attribute(events: List[Event], total: float) -> List[dict]:
    """Rows of one forward: name, seconds, category, shape and BOPs; one
    row per kernel call, then ``outside kernels``."""
    rows = [
        dict(
            name=f'{i:02d} {k.name}',
            seconds=k.seconds,
            category=('binary conv kernels'
                      if k.bops else f'other kernels ({k.name})'),
            shape=k.shape,
            bops=k.bops) for i, k in enumerate(events)
    ]
    rows.append(
        dict(
            name='outside kernels',
            seconds=total - sum(k.seconds for k in events),
            category='outside kernels (Python, checks, unfolded stem)',
            shape='',
            bops=0))
    return rows


def between_fp32(arms: Dict[str, Callable[[], None]], x: torch.Tensor,
                 seed: int) -> Dict[str, Callable[[], None]]:
    """``arms`` with the fp32 reference networks run before each of them
    (as arms of their own, whose times are ignored)."""
    run_nets = fp32_networks(x, seed)
    interleaved: Dict[str, Callable[[], None]] = {}
    for name, fn in arms.items():
        interleaved[f'fp32 before {name}'] = run_nets
        interleaved[name] = fn
    return interleaved


@torch.no_grad()
def profile_forward(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    model = packed_classifier(
        args.preset, size=args.input_size, seed=args.seed)
    forward = model.logits
    size = args.input_size
    x = torch.randn(
        args.batch,
        3,
        size,
        size,
        generator=torch.Generator().manual_seed(args.seed))
    instrument = Instrument()
    per_run: List[List[dict]] = []
    totals: List[float] = []

    def instrumented() -> None:
        # one extension call per block, each timed (the plain forward
        # runs them in one call)
        model.CHAIN_BLOCKS = False
        with instrument:
            instrument.reset()
            start = time.perf_counter()
            forward(x)
            total = time.perf_counter() - start
            per_run.append(attribute(instrument.events, total))
            totals.append(total)
        model.CHAIN_BLOCKS = True

    arms = {'plain': lambda: forward(x), 'instrumented': instrumented}
    if args.between == 'fp32':
        arms = between_fp32(arms, x, args.seed)
    load_before = load_average()
    times = time_round_robin(arms, args.warmup, args.runs)
    load_after = load_average()
    per_run, totals = per_run[-args.runs:], totals[-args.runs:]
    stat = statistics.median if args.stat == 'median' else min
    rows = []
    for i, row in enumerate(per_run[0]):
        ms = stat(r[i]['seconds'] for r in per_run) * 1e3
        out = dict(name=row['name'], category=row['category'], ms=ms)
        if row['bops']:
            out.update(
                shape=row['shape'],
                bops_m=row['bops'] / 1e6,
                gbops_per_s=row['bops'] / ms / 1e6)
        rows.append(out)
    buckets: Dict[str, float] = {}
    for row in rows:
        buckets[row['category']] = buckets.get(row['category'], 0.) + row['ms']
    conv_rows = [r for r in rows if 'bops_m' in r]
    bops = sum(r['bops_m'] for r in conv_rows) * 1e6
    peak = max(r['gbops_per_s'] for r in conv_rows)
    return dict(
        preset=args.preset,
        input=f'{args.batch}x3x{size}x{size}',
        threads=args.threads,
        between=args.between,
        kernel_path=ops.kernel_path(),
        load_before=load_before,
        load_after=load_after,
        plain_ms=summarize(times['plain']),
        instrumented_ms=summarize(times['instrumented']),
        stat=args.stat,
        instrumented_total_ms=stat(totals) * 1e3,
        rows_total_ms=sum(r['ms'] for r in rows),
        bops_g=bops / 1e9,
        peak_layer_gbops_per_s=peak,
        bops_at_peak_ms=bops / peak / 1e6,
        categories=buckets,
        rows=rows,
        aten_ops=aten_profile(forward, x, args))


def aten_profile(forward: Callable, x: torch.Tensor,
                 args: argparse.Namespace) -> List[dict]:
    """ATen operators of the forward by self CPU time, per forward."""
    runs = max(5, args.runs // 4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            forward(x)
    ops_rows = [
        dict(
            name=e.key,
            calls=e.count / runs,
            self_ms=e.self_cpu_time_total / runs / 1e3)
        for e in prof.key_averages()
    ]
    ops_rows.sort(key=lambda r: -r['self_ms'])
    return ops_rows[:args.top_ops]


def print_result(res: dict) -> None:
    print(f'\n## packed NAS-BNN-{res["preset"]} {res["input"]}, '
          f'{res["threads"]} thread(s), path {res["kernel_path"]}, load '
          f'average {res["load_before"]} -> {res["load_after"]}')
    if res['between'] == 'fp32':
        print('each timed forward runs right after the fp32 reference '
              'networks (their caches)')
    plain, inst = res['plain_ms'], res['instrumented_ms']
    print(f'forward (logits): {plain["median"]:.2f} ms plain '
          f'(q1-q3 {plain["q1"]:.2f}-{plain["q3"]:.2f}, min '
          f'{plain["min"]:.2f}), {inst["median"]:.2f} ms instrumented')
    print(f'rows: {res["stat"]} of the runs, summing to '
          f'{res["rows_total_ms"]:.2f} ms')
    print(f'binary ops {res["bops_g"]:.2f} G; at the best layer\'s rate '
          f'({res["peak_layer_gbops_per_s"]:.0f} GBOP/s) they need '
          f'{res["bops_at_peak_ms"]:.2f} ms')
    print(f'\n{"call":<40}{"shape":<28}{"ms":>8}{"%":>6}{"MBOPs":>9}'
          f'{"GBOP/s":>8}')
    total = res['rows_total_ms']
    for r in res['rows']:
        extra = (f'{r["bops_m"]:>9.1f}{r["gbops_per_s"]:>8.0f}'
                 if 'bops_m' in r else '')
        print(f'{r["name"]:<40}{r.get("shape", ""):<28}{r["ms"]:>8.3f}'
              f'{100 * r["ms"] / total:>6.1f}{extra}')
    print(f'\n{"where":<64}{"ms":>8}{"%":>6}')
    for name, ms in sorted(res['categories'].items(), key=lambda kv: -kv[1]):
        print(f'{name:<64}{ms:>8.3f}{100 * ms / total:>6.1f}')
    print(f'\n{"ATen op (torch.profiler)":<44}{"calls":>7}{"self ms":>9}')
    for r in res['aten_ops']:
        print(f'{r["name"]:<44}{r["calls"]:>7.0f}{r["self_ms"]:>9.3f}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    info = cpu_info()
    print(json.dumps(info))
    res = profile_forward(args)
    print_result(res)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(cpu=info, runs=args.runs, **res), f, indent=1)
        print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
