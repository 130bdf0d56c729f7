"""One sandwich step of this plugin vs the official NAS-BNN code, alternating.

Both arms do the same work on the same batch (random images, 1000 classes):
the largest subnet with full-precision weights and binary activations on
label-smoothed cross-entropy, then the smallest and two random subnets with
binary weights on the KL divergence to the teacher's detached logits, each
forward + backward, then one Adam step (no weight decay, no distillation
loss on weights: the official ``--distill`` is off by default). Each arm
builds Adam as its training recipe does: ours with the options of the
supernet configs (``fused=True``), the official with ``torch.optim.Adam``'s
defaults (its ``train.py``). ``--bf16-arm`` adds a third arm, ours with
``conv_operand_dtype='bfloat16'`` (the float convolutions on bfloat16
operands: not the official arithmetic, an opt-in of this plugin).

The official arm follows the loop of the official ``train.py`` (``train()``)
with its ``SuperBNN`` and loss classes, imported from a checkout of
https://github.com/VDIGPKU/NAS-BNN given by ``--official`` (not shipped
here: academic licence). Its network is built from this plugin's
``nasbnn_in1k`` space, which is the official ``superbnn()`` configuration.

Both arms train the same two random subnets in a round (drawn once per
round by this plugin's sampler and handed to the official network as its
``sub_path`` rows), so a round's two steps do the same work; the official
network's largest and smallest candidates are checked against this
plugin's before timing. The arms alternate (ours first in even rounds,
official first in odd ones), so load from other processes hits both alike;
the load average is recorded before and after. Prints a table and one JSON
line.

Example:
    python tools/benchmarks/benchmark_sandwich_vs_official.py \\
        --official /path/to/NAS-BNN --threads 2 --runs 5
"""
import argparse
import importlib
import json
import random
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch
from bench_utils import load_average, spread
from benchmark_sandwich_step import supernet_optim_wrapper

from nasbnn_mm.models.algorithms import SandwichSupernet
from nasbnn_mm.nas import (ArchSpec, SearchSpace, sample_largest,
                           sample_random, sample_smallest)
from nasbnn_mm.testing import LabelSample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--official',
        required=True,
        help='root of a checkout of VDIGPKU/NAS-BNN (has models/, utils/)')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--size', type=int, default=64, help='H = W')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument(
        '--bf16-arm',
        action='store_true',
        help="also time ours with conv_operand_dtype='bfloat16'")
    parser.add_argument('--out', help='also write the JSON result here')
    return parser.parse_args()


def official_cfg(space) -> list:
    """The official ``superbnn()`` cfg rows (channels, depths, kernels,
    groups of the k×k conv, groups of the 1×1 conv, stride) of a space."""
    stem = space.stem
    rows = [[
        list(stem.channels), [1],
        list(stem.kernel_size),
        list(stem.groups), [1], stem.stride
    ]]
    for stage in space.stages:
        rows.append([
            list(stage.channels),
            list(stage.depth),
            list(stage.kernel_size),
            list(stage.groups), [1], stage.stride
        ])
    return rows


def official_sub_path(space: SearchSpace, arch: ArchSpec) -> torch.Tensor:
    """An arch as the official network's ``sub_path``: one row ``[stage,
    block, channels, kernel, groups1, groups2]`` per block slot of the
    supernet (stage 0 the stem), ``[-1, -1, ...]`` for unused slots."""
    rows = [[
        0, 0, arch.stem.channels, arch.stem.kernel_size, arch.stem.groups, 1
    ]]
    for i, (stage, layers) in enumerate(zip(space.stages, arch.stages), 1):
        for j in range(max(stage.depth)):
            layer = layers[min(j, len(layers) - 1)]
            used = j < len(layers)
            rows.append([
                i if used else -1, j if used else -1, layer.channels,
                layer.kernel_size, layer.groups, 1
            ])
    return torch.tensor(rows)


def ours_step(
        batch: dict,
        lr: float,
        conv_operand_dtype: str = 'float32'
) -> Callable[[List[ArchSpec]], None]:
    """This plugin's ``SandwichSupernet.train_step`` with the given random
    students."""
    torch.manual_seed(0)
    model = SandwichSupernet(
        backbone=dict(type='SuperBNN', search_space='nasbnn_in1k'),
        conv_operand_dtype=conv_operand_dtype).train()
    optim = supernet_optim_wrapper(model, lr)

    def step(randoms: List[ArchSpec]) -> None:
        model.sample_students = lambda: [('smallest', model.smallest)] + [
            (f'random{i}', arch) for i, arch in enumerate(randoms)
        ]
        model.train_step(batch, optim)

    return step


def official_step(root: str, space: SearchSpace, images: torch.Tensor,
                  target: torch.Tensor,
                  lr: float) -> Callable[[List[ArchSpec]], None]:
    """The official training loop's body, CPU, one process."""
    sys.path.insert(0, root)
    superbnn = importlib.import_module('models.superbnn')
    losses = importlib.import_module('utils.loss')
    torch.manual_seed(0)
    model = superbnn.SuperBNN(official_cfg(space), 1000,
                              images.shape[-1]).train()
    for name, ours in (('biggest_cand', sample_largest(space)),
                       ('smallest_cand', sample_smallest(space))):
        theirs = getattr(model, name)
        mine = official_sub_path(space, ours)
        used = theirs[:, 0] >= 0
        if not (torch.equal(used, mine[:, 0] >= 0)
                and torch.equal(theirs[used], mine[used])):
            raise SystemExit(f'official {name} {theirs[used].tolist()} is '
                             f'not this space\'s {mine[used].tolist()}')
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion_soft = losses.CrossEntropyLossSmooth(0.1)
    criterion_kd = losses.KLLossSoft()

    def step(randoms: List[ArchSpec]) -> None:
        optimizer.zero_grad()
        model.set_fp_weight()
        output, _ = model(images, model.biggest_cand)
        criterion_soft(output, target).backward()
        soft_logits = output.detach()
        model.set_bin_weight()
        output, _ = model(images, model.smallest_cand)
        criterion_kd(output, soft_logits).backward()
        for arch in randoms:
            output, _ = model(images, official_sub_path(space, arch))
            criterion_kd(output, soft_logits).backward()
        optimizer.step()

    return step


def alternate(arms: Dict[str, Callable[[List[ArchSpec]],
                                       None]], space: SearchSpace, warmup: int,
              runs: int) -> Dict[str, List[float]]:
    """Seconds per run of each arm, the order reversed every round; all
    arms of a round train the same two random subnets."""
    rng = random.Random(0)
    names = list(arms)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for i in range(warmup + runs):
        randoms = [sample_random(space, rng) for _ in range(2)]
        for name in (names if i % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            arms[name](randoms)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(
        args.batch, 3, args.size, args.size, generator=generator)
    target = torch.randint(0, 1000, (args.batch, ), generator=generator)
    batch = dict(
        inputs=images, data_samples=[LabelSample(int(t)) for t in target])
    space = SearchSpace.from_config('nasbnn_in1k')
    arms = dict(
        ours=ours_step(batch, 5e-4),
        official=official_step(args.official, space, images, target, 5e-4))
    if args.bf16_arm:
        arms['ours_bf16'] = ours_step(batch, 5e-4, 'bfloat16')
    load_before = load_average()
    times = alternate(arms, space, args.warmup, args.runs)
    load_after = load_average()
    ms = {name: spread([t * 1e3 for t in ts]) for name, ts in times.items()}
    ratios = [o / u for u, o in zip(times['ours'], times['official'])]
    bf16_ratios = [
        o / u for u, o in zip(times.get('ours_bf16', []), times['official'])
    ]
    result = dict(
        batch=args.batch,
        input_size=args.size,
        threads=torch.get_num_threads(),
        runs=args.runs,
        load_before=load_before,
        load_after=load_after,
        ms=ms,
        official_over_ours=spread(ratios),
        official_over_ours_runs=[round(r, 3) for r in ratios])
    if bf16_ratios:
        result.update(
            official_over_ours_bf16=spread(bf16_ratios),
            official_over_ours_bf16_runs=[round(r, 3) for r in bf16_ratios])
    print(f'sandwich step, batch {args.batch}, {args.size}x{args.size}, '
          f'{result["threads"]} threads, {args.runs} alternating runs, '
          f'load {load_before} -> {load_after}')
    print(f'{"arm":<10}{"median ms":>12}{"min":>10}{"max":>10}')
    for name, s in ms.items():
        print(f'{name:<10}{s["median"]:>12.0f}{s["min"]:>10.0f}'
              f'{s["max"]:>10.0f}')
    print(f'official / ours per round: median '
          f'{statistics.median(ratios):.2f} (min {min(ratios):.2f}, '
          f'max {max(ratios):.2f})')
    if bf16_ratios:
        print(f'official / ours_bf16 per round: median '
              f'{statistics.median(bf16_ratios):.2f} (min '
              f'{min(bf16_ratios):.2f}, max {max(bf16_ratios):.2f})')
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(line + '\n')


if __name__ == '__main__':
    main()
