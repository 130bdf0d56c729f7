"""Top-1 and OPs of random subnets of a trained supernet (Fig. 3 style).

The NAS-BNN paper (https://arxiv.org/abs/2408.15484, Fig. 3) compares
supernet training variants by the accuracy/OPs distribution of randomly
sampled subnets. This tool draws ``--num`` distinct random subnets
(uniform choices under the supernet's Non-Decreasing setting, seeded),
evaluates each one as the search does (:class:`SupernetSearchProblem`:
binary weights and activations, BN recalibrated on the same
``--calibrate-batches`` training batches, top-1 counted on the whole
split) and writes, in ``--out-dir``:

- ``random_subnets.json``: the settings, every subnet's ``arch``,
  ``ops_m`` and ``top1``, and a summary (mean, std, min, max top-1);
- ``random_subnets.png``: top-1 against OPs.

CONFIG is a supernet config (``configs/nasbnn/nasbnn_supernet_*.py``,
``configs/nasbnn/ablations/``); its ``train_dataloader`` gives the BN
calibration batches and its ``val_dataloader`` (or, with ``--split
search_val``, ``search_val_dataloader``) the evaluation images. User errors
print one line ``eval_random_subnets.py: error: ...`` and exit with 2.

Example::

    python tools/analysis_tools/eval_random_subnets.py \\
        configs/nasbnn/nasbnn_supernet_digits.py \\
        work_dirs/supernet_digits/epoch_40.pth --num 100 --seed 0
"""
import argparse
import json
import os
import os.path as osp
import random
import statistics
import sys
import types
from typing import List, Optional

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope

from nasbnn_mm.engine.search import SupernetSearchProblem, load_weights
from nasbnn_mm.utils import UserError, file_digest

PROG = 'eval_random_subnets.py'
SPLITS = dict(val='val_dataloader', search_val='search_val_dataloader')
# NOTE: draws allowed per wanted subnet before a small space is declared
# too small for --num distinct subnets.
_TRIES_PER_SUBNET = 50


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Evaluate random subnets of a trained supernet')
    parser.add_argument('config', help='supernet config file')
    parser.add_argument('checkpoint', help='trained supernet checkpoint')
    parser.add_argument(
        '--num', type=int, required=True, help='number of random subnets')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the draws and of the '
        'calibration batches (default: 0)')
    parser.add_argument(
        '--out-dir',
        help='where the JSON and the plot go (default: '
        'work_dirs/eval_random_subnets/<config name>)')
    parser.add_argument(
        '--split',
        choices=sorted(SPLITS),
        default='val',
        help='evaluation images: val_dataloader or search_val_dataloader '
        '(default: val)')
    parser.add_argument(
        '--calibrate-batches',
        type=int,
        help='training batches for BN recalibration (default: the '
        "config's val_cfg.calibrate_batches, else 10)")
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device (default: cuda if available)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    return parser.parse_args(argv)


def build_problem(cfg: Config, args: argparse.Namespace):
    """The supernet (checkpoint loaded) wrapped in a search problem."""
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = cfg.model.to_dict()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_weights(model, args.checkpoint)
    model.to(args.device)
    split = SPLITS[args.split]
    if cfg.get(split) is None or cfg.get('train_dataloader') is None:
        raise UserError(f'{args.config}: needs train_dataloader (BN '
                        f'recalibration) and {split} (--split {args.split})')
    calibrate = args.calibrate_batches
    if calibrate is None:
        calibrate = (cfg.get('val_cfg') or {}).get('calibrate_batches', 10)
    # NOTE: the problem reads only ``runner.model``.
    return SupernetSearchProblem(
        types.SimpleNamespace(model=model),
        cfg.train_dataloader,
        cfg.get(split),
        calibrate_batches=calibrate,
        seed=args.seed)


def draw_subnets(problem: SupernetSearchProblem, num: int, seed: int) -> list:
    """``num`` distinct random subnets, drawn with ``random.Random(seed)``.
    """
    rng, subnets, seen = random.Random(seed), [], set()
    for _ in range(num * _TRIES_PER_SUBNET):
        arch = problem.sample(rng)
        if arch not in seen:
            seen.add(arch)
            subnets.append(arch)
            if len(subnets) == num:
                return subnets
    raise UserError(f'--num {num}: only {len(subnets)} distinct subnets '
                    f'after {num * _TRIES_PER_SUBNET} draws; the space is '
                    'smaller, ask for fewer')


def summarize(top1: List[float]) -> dict:
    """Mean, standard deviation (population), min and max top-1."""
    return dict(
        mean=statistics.fmean(top1),
        std=statistics.pstdev(top1),
        min=min(top1),
        max=max(top1))


def plot(path: str, records: List[dict], title: str) -> None:
    """Top-1 against OPs of every subnet (matplotlib, Agg canvas)."""
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter([r['ops_m'] for r in records], [r['top1'] for r in records],
               s=12,
               alpha=0.7)
    ax.set_xlabel('OPs (M)')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args: argparse.Namespace) -> dict:
    """Evaluate, write the JSON and the plot; return the JSON object."""
    if args.num < 1:
        raise UserError(f'--num: {args.num} must be >= 1')
    if not osp.isfile(args.config):
        raise UserError(f'config {args.config}: no such file')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'eval_random_subnets',
        osp.splitext(osp.basename(args.config))[0])
    problem = build_problem(cfg, args)
    records = []
    for i, arch in enumerate(draw_subnets(problem, args.num, args.seed)):
        records.append(
            dict(
                arch=problem.to_dict(arch),
                ops_m=problem.cost(arch),
                top1=problem.evaluate(arch)))
        print(f'[{i + 1}/{args.num}] OPs {records[-1]["ops_m"]:.4f}M '
              f'top-1 {records[-1]["top1"]:.2f}%')
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        checkpoint_sha256=file_digest(args.checkpoint),
        split=args.split,
        num=args.num,
        seed=args.seed,
        calibrate_batches=problem.calibrate_batches,
        summary=summarize([r['top1'] for r in records]),
        subnets=records)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'random_subnets.json'), 'w') as f:
        json.dump(result, f, indent=2)
        f.write('\n')
    s = result['summary']
    plot(
        osp.join(out_dir, 'random_subnets.png'), records,
        f'{args.num} random subnets: top-1 {s["mean"]:.2f} +- '
        f'{s["std"]:.2f}%')
    print(f'top-1 mean {s["mean"]:.2f}% std {s["std"]:.2f} min '
          f'{s["min"]:.2f} max {s["max"]:.2f}; written to {out_dir}')
    return result


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f'{PROG}: error: {" ".join(str(e).split())}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
