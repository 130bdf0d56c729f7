"""Throughput of the evolutionary search: candidates evaluated per minute.

Runs ``tools/search.py``'s loop at the settings of a search config (the
digits one by default) into a temporary work dir and reports the wall time
of the search (runner setup excluded), the distinct candidates evaluated,
candidates per minute and the front's buckets. Each evaluation is a BN
recalibration plus a pass over the search-val split, so the number depends
on the CPU/GPU and on the load of other processes. Prints a table and one
JSON line.

Example:
    python tools/benchmarks/benchmark_search.py \\
        --checkpoint work_dirs/supernet_digits/epoch_40.pth
    python tools/benchmarks/benchmark_search.py \\
        --cfg-options train_cfg.max_generations=1   # shorter
"""
import argparse
import json
import tempfile
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from nasbnn_mm.utils import apply_common_args


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config',
        default='configs/nasbnn/nasbnn_search_digits.py',
        help='search config')
    parser.add_argument(
        '--checkpoint',
        help='supernet checkpoint; without it the supernet keeps its random '
        'initial weights (same cost, meaningless accuracies)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads; 0 = default')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = apply_common_args(
            Config.fromfile(args.config), args.config, work_dir,
            args.cfg_options)
        cfg.train_cfg.checkpoint = args.checkpoint
        cfg.train_cfg.resume = False
        cfg.log_level = 'WARNING'
        start = time.perf_counter()
        runner = Runner.from_cfg(cfg)
        setup_s = time.perf_counter() - start
        start = time.perf_counter()
        front = runner.train()
        search_s = time.perf_counter() - start
        loop = runner.train_loop
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        threads=torch.get_num_threads(),
        generations=loop.max_generations + 1,
        candidates=loop.num_evaluated,
        setup_s=round(setup_s, 2),
        search_s=round(search_s, 2),
        candidates_per_min=round(loop.num_evaluated / search_s * 60, 1),
        front_buckets=len(front),
        front_top1=[round(f['top1'], 2) for f in front])
    width = max(map(len, result))
    for key, value in result.items():
        print(f'{key:<{width}}  {value}')
    print(json.dumps(result))


if __name__ == '__main__':
    main()
