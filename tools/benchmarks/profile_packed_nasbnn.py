"""Per-layer profile of a packed NAS-BNN on the CPU: where the time goes.

Runs :meth:`PackedNASBNN.logits` of an untrained preset (the weights do not
change the time) and splits each forward into:

- every binary convolution: its C++ kernel time, the Python around it
  (argument checks, weight lookup, layout views), its binary MACs and the
  kernel's achieved throughput in bit-ops (BOPs, one per binary MAC, the
  paper's count) per second;
- inside each block, outside its convolutions: the other kernels (packing
  the signs of the next input) and the rest (the stride-2 shortcut's
  average pooling, Python);
- the stem, the classifier, and what lies between the blocks (layout
  change after the stem, global pooling, Python).

Kernel calls are timed by a stand-in for the extension module that wraps
each call with ``time.perf_counter``; modules by forward hooks. Both add a
few microseconds per call: the uninstrumented forward is timed
round-robin with the instrumented one and both totals are reported. A
``torch.profiler`` pass lists the ATen operators by self time (what "rest"
and "stem" consist of). The machine's load average is recorded.

Example:
    python tools/benchmarks/profile_packed_nasbnn.py --preset B \\
        --threads 1 --batch 1 --out profile_b.json
"""
import argparse
import json
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from bench_utils import (cpu_info, load_average, packed_classifier, summarize,
                         time_round_robin)
from torch.profiler import ProfilerActivity, profile

from nasbnn_mm.ops import binary_conv as ops

# (kind, label, start, end): kind 'kernel' (an extension call, label its
# function name) or 'module' (label the module's name in the model).
Event = Tuple[str, str, float, float]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='B')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument(
        '--top-ops', type=int, default=12, help='ATen ops listed')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    if args.runs < 10:
        parser.error(f'--runs {args.runs}: use >= 10 for a stable median')
    return args


class TimedExt:
    """Stands in for the extension module: times every function call.

    Args:
        ext: The loaded ``nasbnn_mm._ext``.
        events (list): Receives ``('kernel', name, start, end)``.
    """

    def __init__(self, ext, events: List[Event]) -> None:
        self._ext = ext
        self._events = events

    def __getattr__(self, name: str):
        fn = getattr(self._ext, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self._events.append(('kernel', name, start, time.perf_counter()))
            return out

        return timed


class Instrument:
    """Records kernel calls and module forwards of a packed model.

    Modules: the stem, every block (``stages.i.j``), every binary conv
    (modules with ``num_binary_weights``) and the classifier ``fc``. Use as
    a context manager; ``events`` holds what one forward recorded after
    :meth:`reset`.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.events: List[Event] = []
        self.macs: Dict[str, int] = {}
        self.shapes: Dict[str, str] = {}
        self._handles = []
        self._starts: Dict[str, float] = {}
        self._ext = None

    def modules(self) -> Dict[str, nn.Module]:
        named = {'stem': self.model.stem}
        for i, blocks in enumerate(self.model.stages):
            for j, block in enumerate(blocks):
                named[f'stages.{i}.{j}'] = block
                for name, m in block.named_modules():
                    if hasattr(m, 'num_binary_weights'):
                        named[f'stages.{i}.{j}.{name}'] = m
        if self.model.fc is not None:
            named['fc'] = self.model.fc
        return named

    def __enter__(self) -> 'Instrument':
        for label, module in self.modules().items():
            self._handles.append(
                module.register_forward_pre_hook(self._pre_hook(label)))
            self._handles.append(
                module.register_forward_hook(self._post_hook(label, module)))
        self._ext = ops.load_ext()
        ops._ext = TimedExt(self._ext, self.events)
        return self

    def __exit__(self, *exc) -> None:
        ops._ext = self._ext
        for handle in self._handles:
            handle.remove()

    def reset(self) -> None:
        self.events.clear()

    def _pre_hook(self, label: str):

        def hook(module, inputs):
            self._starts[label] = time.perf_counter()

        return hook

    def _post_hook(self, label: str, module: nn.Module):

        def hook(module, inputs, output):
            end = time.perf_counter()
            self.events.append(('module', label, self._starts[label], end))
            if hasattr(module, 'num_binary_weights') and label not in \
                    self.macs:
                out = output[0] if isinstance(output, tuple) else output
                n, c, h, w = out.shape
                self.macs[label] = (
                    out.numel() * module.in_channels // module.groups *
                    module.kernel_size**2)
                self.shapes[label] = (
                    f'{module.in_channels}->{c} k{module.kernel_size} '
                    f'g{module.groups} s{module.stride} @{h}x{w}')

        return hook


def attribute(events: List[Event], total: float) -> Dict[str, float]:
    """Seconds of one forward per profile row.

    Rows: ``<conv> kernel`` and ``<conv> python`` per binary conv,
    ``<block> <kernel name>`` for kernels of a block outside its convs,
    ``<block> rest``, ``stem``, ``fc`` and ``between blocks``.
    """
    modules = [e for e in events if e[0] == 'module']
    kernels = [e for e in events if e[0] == 'kernel']

    def inside(event: Event, window: Event) -> bool:
        return window[2] <= event[2] and event[3] <= window[3]

    rows: Dict[str, float] = {}

    def add(key: str, value: float) -> None:
        rows[key] = rows.get(key, 0.) + value

    convs = [m for m in modules if m[1].count('.') >= 3]
    blocks = [m for m in modules if m[1].count('.') == 2]
    for conv in convs:
        kernel = sum(k[3] - k[2] for k in kernels if inside(k, conv))
        add(f'{conv[1]} kernel', kernel)
        add(f'{conv[1]} python', conv[3] - conv[2] - kernel)
    for block in blocks:
        own = [c for c in convs if inside(c, block)]
        rest = block[3] - block[2] - sum(c[3] - c[2] for c in own)
        for k in kernels:
            if inside(k, block) and not any(inside(k, c) for c in own):
                add(f'{block[1]} {k[1]}', k[3] - k[2])
                rest -= k[3] - k[2]
        add(f'{block[1]} rest', rest)
    top = [m for m in modules if m[1] in ('stem', 'fc')]
    for m in top:
        add(m[1], m[3] - m[2])
    add('between blocks', total - sum(m[3] - m[2] for m in top + blocks))
    return rows


def category(key: str) -> str:
    """The summary bucket of a profile row."""
    if key.endswith(' kernel'):
        return 'binary conv kernels'
    if key.endswith(' python'):
        return 'conv wrappers (Python, checks)'
    if key.endswith(' rest'):
        return 'blocks: shortcut pool, Python'
    if key in ('stem', 'fc', 'between blocks'):
        return {
            'stem': 'stem (8-bit conv, BN, RPReLU)',
            'fc': 'classifier',
            'between blocks': 'between blocks (layout, pooling, Python)'
        }[key]
    return 'blocks: other kernels (' + key.split(' ', 1)[1] + ')'


@torch.no_grad()
def profile_forward(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    model = packed_classifier(
        args.preset, size=args.input_size, seed=args.seed)
    size = args.input_size
    x = torch.randn(
        args.batch,
        3,
        size,
        size,
        generator=torch.Generator().manual_seed(args.seed))
    instrument = Instrument(model)
    per_run: List[Dict[str, float]] = []
    totals: List[float] = []

    def instrumented() -> None:
        with instrument:
            instrument.reset()
            start = time.perf_counter()
            model.logits(x)
            total = time.perf_counter() - start
            per_run.append(attribute(instrument.events, total))
            totals.append(total)

    load_before = load_average()
    times = time_round_robin(
        {
            'plain': lambda: model.logits(x),
            'instrumented': instrumented
        }, args.warmup, args.runs)
    load_after = load_average()
    per_run, totals = per_run[-args.runs:], totals[-args.runs:]
    rows = []
    for key in per_run[0]:
        values = [r[key] for r in per_run]
        ms = statistics.median(values) * 1e3
        row = dict(name=key, ms=ms, category=category(key))
        conv = key[:-len(' kernel')] if key.endswith(' kernel') else None
        if conv is not None:
            row['shape'] = instrument.shapes[conv]
            row['bops_m'] = instrument.macs[conv] / 1e6
            row['gbops_per_s'] = instrument.macs[conv] / ms / 1e6
        rows.append(row)
    total_ms = statistics.median(totals) * 1e3
    buckets: Dict[str, float] = {}
    for row in rows:
        buckets[row['category']] = buckets.get(row['category'], 0.) + \
            row['ms']
    kernel_rows = [r for r in rows if 'bops_m' in r]
    bops = sum(r['bops_m'] for r in kernel_rows) * 1e6
    peak = max(r['gbops_per_s'] for r in kernel_rows)
    return dict(
        preset=args.preset,
        input=f'{args.batch}x3x{size}x{size}',
        threads=args.threads,
        kernel_path=ops.kernel_path(),
        load_before=load_before,
        load_after=load_after,
        plain_ms=summarize(times['plain']),
        instrumented_ms=summarize(times['instrumented']),
        attributed_total_ms=total_ms,
        bops_g=bops / 1e9,
        peak_layer_gbops_per_s=peak,
        bops_at_peak_ms=bops / peak / 1e6,
        categories=buckets,
        rows=rows,
        aten_ops=aten_profile(model, x, args))


def aten_profile(model: nn.Module, x: torch.Tensor,
                 args: argparse.Namespace) -> List[dict]:
    """ATen operators of the forward by self CPU time, per forward."""
    runs = max(5, args.runs // 4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            model.logits(x)
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
    plain, inst = res['plain_ms'], res['instrumented_ms']
    print(f'forward (logits): {plain["median"]:.2f} ms plain '
          f'(q1-q3 {plain["q1"]:.2f}-{plain["q3"]:.2f}), '
          f'{inst["median"]:.2f} ms instrumented')
    print(f'binary ops {res["bops_g"]:.2f} G; at the best layer\'s rate '
          f'({res["peak_layer_gbops_per_s"]:.0f} GBOP/s) they need '
          f'{res["bops_at_peak_ms"]:.2f} ms')
    print(f'\n{"layer":<34}{"shape":<28}{"ms":>8}{"%":>6}{"MBOPs":>9}'
          f'{"GBOP/s":>8}')
    total = res['attributed_total_ms']
    for r in res['rows']:
        extra = (f'{r["bops_m"]:>9.1f}{r["gbops_per_s"]:>8.0f}'
                 if 'bops_m' in r else '')
        print(f'{r["name"]:<34}{r.get("shape", ""):<28}{r["ms"]:>8.3f}'
              f'{100 * r["ms"] / total:>6.1f}{extra}')
    print(f'\n{"where":<44}{"ms":>8}{"%":>6}')
    for name, ms in sorted(res['categories'].items(), key=lambda kv: -kv[1]):
        print(f'{name:<44}{ms:>8.3f}{100 * ms / total:>6.1f}')
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
