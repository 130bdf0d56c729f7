"""Search a trained supernet for its OPs/accuracy Pareto front.

The config's ``train_cfg`` is an :class:`EvolutionSearchLoop`
(``configs/nasbnn/nasbnn_search_*.py``, ``configs/width_search/``);
``runner.train()`` runs it. The supernet weights are loaded with
``weights_only=True``. Outputs in the work dir: ``pareto.json``,
``pareto.png``, ``search_state.json`` and the log. ``--resume`` continues
the search of the work dir with the same settings and the same checkpoint
(compared by content). The supernet is built with the conventions the
checkpoint stores (``meta['nasbnn_conventions']``: weight normalization,
stem input quantization, group slicing, Bi-Transformation rule, search
space); a config that sets one differently is refused. A user error (a
missing or damaged file, a wrong setting, another checkpoint on resume)
prints one line ``search.py: error: ...`` and exits with status 2.

Example::

    python tools/search.py configs/nasbnn/nasbnn_search_digits.py \\
        work_dirs/supernet_digits/epoch_40.pth \\
        --work-dir work_dirs/search_digits
    python tools/search.py CONFIG CHECKPOINT --work-dir DIR --resume
    torchrun --nproc-per-node 8 tools/search.py CONFIG CHECKPOINT \\
        --launcher pytorch
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from nasbnn_mm.models import apply_checkpoint_conventions
from nasbnn_mm.utils import UserError, apply_common_args, tool_process_group

PROG = 'search.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evolutionary search of a supernet')
    parser.add_argument('config', help='search config file path')
    parser.add_argument('checkpoint', help='trained supernet checkpoint')
    parser.add_argument(
        '--work-dir', help='the dir to save the search state and results')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='continue the search saved in the work dir '
        '(search_state.json)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_generations=5')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line options to the config.

    Raises:
        ValueError: If the config's ``train_cfg`` is not a search loop.
    """
    apply_common_args(cfg, args.config, args.work_dir, args.cfg_options,
                      args.launcher)
    train_cfg = cfg.get('train_cfg', None)
    if not train_cfg or 'problem' not in train_cfg:
        raise ValueError(
            f'{args.config}: train_cfg {dict(train_cfg or {})} is not a '
            "search loop (no 'problem'); use a search config such as "
            'configs/nasbnn/nasbnn_search_digits.py')
    # The supernet is built with the conventions stored in the checkpoint
    # (a converted official one: weight_norm='official'...).
    if cfg.model.get('backbone', None) is not None:
        apply_checkpoint_conventions(cfg.model.backbone, args.checkpoint,
                                     args.checkpoint)
    train_cfg.checkpoint = args.checkpoint
    train_cfg.resume = args.resume
    # The loop loads the supernet and resumes the search itself; the
    # runner's checkpoint loading and resuming stay off.
    cfg.load_from = None
    cfg.resume = False
    return cfg


def main() -> int:
    args = parse_args()
    with tool_process_group(args.launcher):
        return search(args)


def search(args: argparse.Namespace) -> int:
    """Check the inputs, run the search and print the Pareto front."""
    if not osp.isfile(args.checkpoint):
        print(
            f'{PROG}: error: checkpoint {args.checkpoint}: no such file',
            file=sys.stderr)
        return 2
    try:
        cfg = merge_args(Config.fromfile(args.config), args)
        runner = Runner.from_cfg(cfg)
        runner.train()
    except (UserError, ValueError, FileNotFoundError) as e:
        # A missing dataset, a damaged checkpoint or state file, a wrong
        # setting or an infeasible OPs range (UserError is a ValueError)
        # is a user error: one clear line.
        message = ' '.join(str(e).split())
        print(f'{PROG}: error: {message}', file=sys.stderr)
        return 2
    pareto = osp.join(cfg.work_dir, 'pareto.json')
    if osp.isfile(pareto) and runner.rank == 0:
        with open(pareto, encoding='utf-8') as f:
            front = json.load(f)
        print(f'front: {len(front)} buckets, written to {pareto}')
        for item in front:
            cost = {k: v for k, v in item.items() if k not in ('arch', )}
            print('  ' + ', '.join(f'{k} {v:.4f}' for k, v in cost.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
