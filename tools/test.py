"""Evaluate a checkpoint with a config (MMPretrain or MMDetection style).

Classification configs print top-1/top-5, detection configs COCO bbox mAP
(mmdet's ``CocoMetric``, i.e. pycocotools). The metrics are also printed as
one JSON line at the end.

A checkpoint whose keys or shapes do not fit the model is refused, naming
the first missing/unexpected keys (``nasbnn_mm.CheckpointKeysHook``);
``--allow-partial-load`` accepts an intended partial load with a warning. A
user error (a damaged checkpoint, a bad config or arch spec; see
``nasbnn_mm/utils/errors.py``) prints one line and exits with status 2.

Example::

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl]
"""
import argparse
import json
import numbers
import os
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from nasbnn_mm.engine.hooks.checkpoint_keys_hook import \
    add_checkpoint_keys_hook
from nasbnn_mm.utils import UserError, read_checkpoint, tool_process_group
from nasbnn_mm.utils.config_utils import (apply_common_args, check_out_file,
                                          read_config)
from nasbnn_mm.utils.errors import run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs')
    parser.add_argument(
        '--out', help='dump the raw predictions to this pickle file')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='accept a checkpoint whose keys do not all fit the model (an '
        'intended partial load), with a warning instead of an error')
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
        raise UserError('--show-dir: the config has no '
                        'default_hooks.visualization to draw with')
    hook['draw' if cfg.default_scope == 'mmdet' else 'enable'] = True
    hook['test_out_dir' if cfg.default_scope == 'mmdet' else 'out_dir'] = \
        show_dir


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line options to the config."""
    apply_common_args(cfg, args.config, args.work_dir, args.cfg_options,
                      args.launcher)
    cfg.load_from = args.checkpoint
    add_checkpoint_keys_hook(cfg, args.checkpoint, args.allow_partial_load)
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


def evaluate(args: argparse.Namespace) -> int:
    """Check the inputs, then test and print the metrics as JSON."""
    with tool_process_group(args.launcher):
        return _evaluate(args)


def _evaluate(args: argparse.Namespace) -> int:
    """:func:`evaluate` inside its process group."""
    cfg = read_config(args.config)
    # A damaged or foreign file: one line now, not a torch traceback later.
    read_checkpoint(args.checkpoint)
    if args.out:
        check_out_file(args.out, '--out')
        if not args.out.endswith(('.pkl', '.pickle')):
            raise UserError(f'--out {args.out}: expected a .pkl file')
    runner = Runner.from_cfg(merge_args(cfg, args))
    metrics = runner.test()
    print(
        json.dumps({
            k: float(v)
            for k, v in metrics.items() if isinstance(v, numbers.Number)
        }))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_tool('test.py', lambda: evaluate(args))


if __name__ == '__main__':
    sys.exit(main())
