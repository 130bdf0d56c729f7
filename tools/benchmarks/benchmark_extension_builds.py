"""Two builds of the kernels (``nasbnn_mm._ext``) timed side by side.

Each build runs in a worker process of its own (one Python process can
hold one ``nasbnn_mm._ext``: CPython hands back the module it already
loaded under that name whatever the file, so two builds in one process
time the first build twice). The workers build the same packed NAS-BNN
models (untrained presets with their FP classifier,
:meth:`PackedNASBNN.logits`) and wait; the parent asks them for one round
at a time, so only one of them runs at any moment, and swaps their order
every round (ABBA...): in a fixed order the build timed second gains from
the caches the first one warmed. Half of the rounds run with the workers
started the other way round (the worker started second ran ~1 % faster
here whatever its build). Give the same file twice for the A/A check.

Each round runs, per preset and build, one untimed forward and ``--calls``
timed ones (their minimum is the round's time). With ``--between fp32``
each worker runs the fp32 reference networks of
``benchmark_packed_vs_fp.py`` before each forward, timed or not: the
caches that benchmark's round-robin leaves. Reported per preset: each
build's median over the rounds, the median and quartiles of the per-round
ratio first build / second build (> 1: the second is faster), and whether
the two builds' logits are bitwise equal (a line warns when they are not:
a faster build that computes something else is not a speed-up).

Build the old version into its own directory first, e.g.::

    mkdir /tmp/old && git archive <commit> | tar -x -C /tmp/old && \\
        cd /tmp/old && python setup.py build_ext --inplace
    python tools/benchmarks/benchmark_extension_builds.py \\
        /tmp/old/nasbnn_mm/_ext*.so nasbnn_mm/_ext*.so --presets A B
"""
import argparse
import hashlib
import importlib.machinery
import importlib.util
import json
import os.path as osp
import subprocess
import sys
import time
from types import ModuleType
from typing import Callable, Dict, List, Optional

import torch
from bench_utils import (cpu_info, fp32_networks, load_average,
                         packed_classifier, spread, summarize)

from nasbnn_mm.ops import binary_conv
from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.errors import run_tool

# What the packed forward calls; both builds must have them.
REQUIRED = ('binary_block', 'quantized_stem', 'pack_activation',
            'block_weight', 'kernel_path')
EXT_NAME = 'nasbnn_mm._ext'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('builds', nargs=2, help='two built extensions (.so)')
    parser.add_argument('--presets', nargs='+', default=['A', 'B'])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=60)
    parser.add_argument('--calls', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--between',
        choices=['nothing', 'fp32'],
        default='nothing',
        help='run before each forward (fp32: the fp32 reference networks, '
        'as in benchmark_packed_vs_fp.py\'s round-robin)')
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
    """Load the extension at ``path`` as ``nasbnn_mm._ext`` of this process
    and make it the one every kernel call uses. Only once per process."""
    if EXT_NAME in sys.modules or binary_conv._ext is not None:
        raise RuntimeError(f'{EXT_NAME} is loaded already; a process can '
                           f'hold one build')
    loader = importlib.machinery.ExtensionFileLoader(EXT_NAME, path)
    spec = importlib.util.spec_from_file_location(
        EXT_NAME, path, loader=loader)
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError as e:
        raise UserError(f'{path}: cannot be loaded as nasbnn_mm._ext ({e})')
    missing = [f for f in REQUIRED if not hasattr(module, f)]
    if missing:
        raise UserError(f'{path}: not a nasbnn_mm._ext build (missing '
                        f'{", ".join(missing)})')
    sys.modules[EXT_NAME] = module
    binary_conv._ext = module
    return module


def mapped_builds() -> List[str]:
    """The ``_ext*.so`` shared objects mapped into this process (Linux)."""
    with open('/proc/self/maps') as f:
        paths = {line.split()[-1] for line in f}
    return sorted(
        p for p in paths
        if osp.basename(p).startswith('_ext') and p.endswith('.so'))


def digest(tensor: torch.Tensor) -> str:
    """A hash of ``tensor``'s bytes (bitwise equality of outputs)."""
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


def best_of(forward, x: torch.Tensor, calls: int,
            before: Callable[[], None]) -> float:
    """One untimed call of ``forward``, then the fastest of ``calls``;
    ``before`` (untimed) runs before each call."""
    before()
    forward(x)
    best = float('inf')
    for _ in range(calls):
        before()
        start = time.perf_counter()
        forward(x)
        best = min(best, time.perf_counter() - start)
    return best


def worker_main(args: argparse.Namespace) -> int:
    """A worker: load one build, build the models, then answer one JSON
    line per line of stdin (a preset: the seconds of one round of it)."""
    reply = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the replies
    torch.set_num_threads(args.threads)
    try:
        module = load_build(args.worker)
        models = {
            p: packed_classifier(p, size=args.input_size, seed=args.seed)
            for p in args.presets
        }
    except UserError as e:
        print(json.dumps(dict(error=str(e))), file=reply, flush=True)
        return 2
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(1, 3, args.input_size, args.input_size, generator=gen)
    before = (
        fp32_networks(x, args.seed) if args.between == 'fp32' else
        (lambda: None))
    with torch.inference_mode():
        digests = {p: digest(m.logits(x)) for p, m in models.items()}
        print(
            json.dumps(
                dict(
                    file=module.__file__,
                    mapped=mapped_builds(),
                    kernel_path=module.kernel_path(),
                    digests=digests)),
            file=reply,
            flush=True)
        for line in sys.stdin:
            preset = line.strip()
            seconds = best_of(models[preset].logits, x, args.calls, before)
            print(json.dumps(dict(seconds=seconds)), file=reply, flush=True)
    return 0


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, build: str, args: argparse.Namespace) -> None:
        command = [
            sys.executable,
            osp.abspath(__file__), '--worker',
            osp.abspath(build), '--presets', *args.presets, '--threads',
            str(args.threads), '--input-size',
            str(args.input_size), '--calls',
            str(args.calls), '--seed',
            str(args.seed), '--between', args.between
        ]
        self.build = build
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._reply()

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f'the worker of {self.build} exited with '
                               f'status {self.process.returncode} (see '
                               'above)')
        reply = json.loads(line)
        if 'error' in reply:
            self.process.wait()
            raise UserError(reply['error'])
        return reply

    def round(self, preset: str) -> float:
        self.process.stdin.write(preset + '\n')
        self.process.stdin.flush()
        return self._reply()['seconds']

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait()


def time_builds(workers: List, presets: List[str],
                rounds: int) -> Dict[str, List[List[float]]]:
    """Per preset, per build, the seconds of every round, the builds'
    order swapped every round (anything with ``round(preset)`` works as a
    worker)."""
    times = {name: [[], []] for name in presets}
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for name in presets:
            for b in order:
                times[name][b].append(workers[b].round(name))
    return times


def report_rows(times: Dict[str, List[List[float]]],
                infos: List[dict]) -> List[dict]:
    """One row per preset: each build's times, the per-round ratio first /
    second and whether the workers' logits were bitwise equal."""
    rows = []
    for name, (first, second) in times.items():
        rows.append(
            dict(
                preset=name,
                outputs_equal=(
                    infos[0]['digests'][name] == infos[1]['digests'][name]),
                first_ms=summarize(first),
                second_ms=summarize(second),
                first_over_second=spread(
                    [a / b for a, b in zip(first, second)])))
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    """Exit status: 0, or 2 after a user error (an unloadable build, an
    unknown preset), printed as one line."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--worker']:
        parser = argparse.ArgumentParser()
        parser.add_argument('--worker')
        parser.add_argument('--presets', nargs='+')
        for name in ('threads', 'input-size', 'calls', 'seed'):
            parser.add_argument(f'--{name}', type=int)
        parser.add_argument('--between')
        return worker_main(parser.parse_args(argv))
    args = parse_args(argv)
    return run_tool('benchmark_extension_builds.py', lambda: run(args))


def time_in_both_spawn_orders(args: argparse.Namespace) -> tuple:
    """:func:`time_builds` for half of the rounds with the workers started
    in the order of ``args.builds``, then with new workers started the
    other way round (on this 2-core VM the worker started second ran ~1 %
    faster, whatever its build). Returns the times and the first pair's
    worker infos."""
    times = {name: [[], []] for name in args.presets}
    infos = None
    for half, order in enumerate(((0, 1), (1, 0))):
        rounds = (args.rounds + 1 - half) // 2
        if rounds == 0:
            continue
        workers = {}
        try:
            for b in order:
                workers[b] = Worker(args.builds[b], args)
            part = time_builds([workers[0], workers[1]], args.presets, rounds)
        finally:
            for w in workers.values():
                w.close()
        infos = infos or [workers[0].info, workers[1].info]
        for name in args.presets:
            for b in (0, 1):
                times[name][b] += part[name][b]
    return times, infos


def run(args: argparse.Namespace) -> int:
    load_before = load_average()
    times, infos = time_in_both_spawn_orders(args)
    load_after = load_average()
    rows = report_rows(times, infos)
    between = ('' if args.between == 'nothing' else
               ', each forward after the fp32 reference networks')
    print(f'## {args.builds[0]} (first) vs {args.builds[1]} (second), '
          f'{args.threads} thread(s), {args.rounds} rounds{between}, load '
          f'average {load_before} -> {load_after}')
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
                    workers=infos,
                    machine=cpu_info(),
                    threads=args.threads,
                    rounds=args.rounds,
                    calls=args.calls,
                    between=args.between,
                    load_average=[load_before, load_after],
                    rows=rows),
                f,
                indent=2)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
