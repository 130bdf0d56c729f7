"""Evaluate a checkpoint with a config (MMPretrain or MMDetection style).

Classification configs print top-1/top-5, detection configs COCO bbox mAP
(mmdet's ``CocoMetric``, i.e. pycocotools). The metrics are also printed as
one JSON line at the end.

Example::

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl]
"""
import argparse
import json
import numbers
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from nasbnn_mm.utils import apply_common_args, init_cpu_process_group


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs')
    parser.add_argument(
        '--out', help='dump the raw predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='draw predictions into this folder (under the work dir)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Turn on the config's visualization hook to draw into ``show_dir``."""
    hook = cfg.default_hooks.get('visualization', None)
    if hook is None:
        raise ValueError('--show-dir: the config has no '
                         'default_hooks.visualization to draw with')
    hook['draw' if cfg.default_scope == 'mmdet' else 'enable'] = True
    hook['test_out_dir' if cfg.default_scope == 'mmdet' else 'out_dir'] = \
        show_dir


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line options to the config."""
    apply_common_args(cfg, args.config, args.work_dir, args.cfg_options,
                      args.launcher)
    cfg.load_from = args.checkpoint
    # mmengine's Runner refuses an incomplete set of training parts (e.g. a
    # base's train_dataloader without an optimizer); testing does not train.
    # A complete set is kept: SubnetTestLoop recalibrates BN on the
    # train_dataloader.
    train_parts = ('train_dataloader', 'train_cfg', 'optim_wrapper')
    if any(cfg.get(key) is None for key in train_parts):
        for key in train_parts:
            cfg[key] = None
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    if args.out:
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, list):
            evaluators = [evaluators]
        cfg.test_evaluator = evaluators + [
            dict(type='mmengine.DumpResults', out_file_path=args.out)
        ]
    return cfg


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    init_cpu_process_group(args.launcher)
    if not osp.isfile(args.checkpoint):
        print(
            f'error: checkpoint {args.checkpoint!r} does not exist',
            file=sys.stderr)
        return 2
    cfg = merge_args(Config.fromfile(args.config), args)
    try:
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    except FileNotFoundError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(
        json.dumps({
            k: float(v)
            for k, v in metrics.items() if isinstance(v, numbers.Number)
        }))
    return 0


if __name__ == '__main__':
    sys.exit(main())
