"""Train a model from a config (MMPretrain or MMDetection style).

Everything comes from the config: its ``default_scope`` picks the
downstream library and ``custom_imports`` loads ``nasbnn_mm``. A user error
(a bad config, arch spec, search space or checkpoint; see
``nasbnn_mm/utils/errors.py``) prints one line and exits with status 2; a
bug keeps its traceback. Without CUDA, ``--launcher pytorch`` runs on gloo
with DDP around the CPU model.

Example::

    python tools/train.py configs/nasbnn/nasbnn_supernet_digits.py
    python tools/train.py CONFIG --resume            # continue the last run
    torchrun --nproc-per-node 2 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import glob
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.runner import Runner, find_latest_checkpoint

from nasbnn_mm.engine.hooks.checkpoint_keys_hook import \
    add_checkpoint_keys_hook
from nasbnn_mm.utils import (CheckpointError, read_checkpoint,
                             tool_process_group)
from nasbnn_mm.utils.config_utils import apply_common_args, read_config
from nasbnn_mm.utils.errors import run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given')
    parser.add_argument(
        '--amp', action='store_true', help='enable mixed precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=2')
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


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line options to the config."""
    apply_common_args(cfg, args.config, args.work_dir, args.cfg_options,
                      args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('load_from', None) or cfg.get('resume', False):
        add_checkpoint_keys_hook(cfg, cfg.get('load_from', None))
    return cfg


def check_start_checkpoint(cfg: Config) -> None:
    """Read the checkpoint the run starts from before building anything.

    A damaged file then fails in one line naming it (``CheckpointError``)
    instead of a torch traceback after the model is built; a damaged
    latest checkpoint of ``--resume`` names an earlier one to resume from.
    """
    if cfg.get('load_from', None):
        what = 'resume checkpoint' if cfg.get('resume') else 'load_from'
        read_checkpoint(cfg.load_from, what)
        return
    if not cfg.get('resume', False):
        return
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest is None:
        return
    try:
        read_checkpoint(latest, 'latest checkpoint')
    except CheckpointError as e:
        earlier = sorted((p
                          for p in glob.glob(osp.join(cfg.work_dir, '*.pth'))
                          if osp.abspath(p) != osp.abspath(latest)),
                         key=osp.getmtime)
        hint = (f'; resume from an earlier one with --resume {earlier[-1]}'
                if earlier else '')
        raise CheckpointError(f'--resume: {e}{hint}') from e


def train(args: argparse.Namespace) -> int:
    """Read the config, apply the options and train."""
    with tool_process_group(args.launcher):
        cfg = merge_args(read_config(args.config), args)
        check_start_checkpoint(cfg)
        runner = Runner.from_cfg(cfg)
        runner.train()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_tool('train.py', lambda: train(args))


if __name__ == '__main__':
    sys.exit(main())
