"""Export a subnet of a trained supernet as a static classifier (pipeline 1).

Loads the supernet of CONFIG from SUPERNET_CKPT, picks a subnet (a spec, or
the largest entry of a search's Pareto front under an OPs budget), slices it
into a static ``NASBNN`` backbone and a linear classifier, re-estimates its
BN statistics on training batches and writes, under ``--out``:

- ``<name>.pth``: an MMPretrain ``ImageClassifier`` checkpoint (keys
  ``backbone.*``, ``head.fc.*``; ``meta`` with the spec and its OPs),
  readable with ``torch.load(weights_only=True)``;
- ``arch.json``: the spec;
- ``<name>_cfg.py`` (with ``--subnet-config``): that config pointed at the
  export, for ``tools/test.py`` or fine-tuning (pipeline 2).

Example::

    python tools/export_subnet.py work_dirs/supernet/epoch_40.pth \\
        --config configs/nasbnn/nasbnn_supernet_digits.py \\
        --pareto work_dirs/search/pareto.json --ops 2 \\
        --out work_dirs/export --subnet-config \\
        configs/nasbnn/nasbnn-subnet_digits.py
    python tools/test.py work_dirs/export/subnet_cfg.py \\
        work_dirs/export/subnet.pth
"""
import argparse
import copy
import json
import os
import os.path as osp
import pprint
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner, set_random_seed
from mmengine.utils import import_modules_from_strings

from nasbnn_mm.engine import recalibrate_bn
from nasbnn_mm.models import (SUBNET_NAMES, SandwichSupernet,
                              apply_checkpoint_conventions, export_subnet,
                              subnet_checkpoint)
from nasbnn_mm.nas import BUILTIN_SPACES, dump_arch
from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.checkpoint import (extract_state_dict,
                                        load_state_dict_strict, save_atomic)
from nasbnn_mm.utils.errors import run_tool

TOOL = 'export_subnet.py'
ARCH_FILE = 'arch.json'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=TOOL,
        description='Export a subnet of a NAS-BNN supernet as a static '
        'classifier checkpoint')
    parser.add_argument('checkpoint', help='supernet checkpoint')
    parser.add_argument(
        '--config', required=True, help='the supernet training config')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        '--arch',
        help=f'the subnet: {" or ".join(SUBNET_NAMES)} (the supernet\'s '
        'sandwich extremes), a preset (A..F) or a JSON/YAML spec file')
    which.add_argument(
        '--pareto',
        help='JSON list of {"arch": spec, "ops_m": float, "top1": float} '
        '(a search result); the entry with the largest ops_m <= --ops is '
        'exported')
    parser.add_argument(
        '--ops', type=float, help='OPs budget in millions (with --pareto)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--name', default='subnet', help='file name of the export')
    parser.add_argument(
        '--calibrate-batches',
        type=int,
        help='training batches to re-estimate BN statistics (0: keep the '
        "supernet's; default: the config's test_cfg.calibrate_batches, "
        'what tools/test.py validates the subnet with, else 10)')
    parser.add_argument(
        '--subnet-config',
        help='a static subnet config (e.g. configs/nasbnn/'
        'nasbnn-subnet_digits.py) to write <out>/<name>_cfg.py from')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device of the BN recalibration')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the supernet config')
    args = parser.parse_args(argv)
    if args.pareto is not None and args.ops is None:
        parser.error('--pareto needs --ops')
    if args.pareto is None and args.ops is not None:
        parser.error('--ops is only used with --pareto')
    if args.calibrate_batches is not None and args.calibrate_batches < 0:
        parser.error(f'--calibrate-batches: {args.calibrate_batches} must '
                     'be >= 0')
    return args


def pick_from_pareto(path: str, ops_m: float) -> Dict[str, Any]:
    """The entry of a Pareto front file with the largest ``ops_m`` that is
    at most ``ops_m``.

    Raises:
        UserError: If the file is malformed or no entry fits the budget.
    """
    with open(path, encoding='utf-8') as f:
        try:
            entries = json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f'{path}: invalid JSON at line {e.lineno}: '
                            f'{e.msg}') from None
    if not isinstance(entries, list) or not entries:
        raise UserError(f'{path}: expected a non-empty JSON list of '
                        '{"arch": ..., "ops_m": ..., "top1": ...}')
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or 'arch' not in entry \
                or not isinstance(entry.get('ops_m'), (int, float)):
            raise UserError(f'{path}: entry [{i}] needs keys "arch" and '
                            f'"ops_m" (a number); got {entry!r}')
    fitting = [e for e in entries if e['ops_m'] <= ops_m]
    if not fitting:
        smallest = min(e['ops_m'] for e in entries)
        raise UserError(f'--ops {ops_m:g}: no entry of {path} has ops_m <= '
                        f'{ops_m:g}; the smallest has {smallest:g}')
    return max(fitting, key=lambda e: e['ops_m'])


def build_supernet(cfg: Config, checkpoint: str) -> SandwichSupernet:
    """Build the config's supernet with the checkpoint's conventions and
    load the checkpoint (strict)."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if cfg.get('custom_imports', None):
        import_modules_from_strings(**cfg.custom_imports)
    model_cfg = copy.deepcopy(cfg.model)
    # NOTE: the supernet is built with the checkpoint's conventions (a
    # converted official one needs weight_norm='official'...).
    apply_checkpoint_conventions(
        model_cfg.setdefault('backbone', {}), checkpoint, checkpoint)
    if cfg.get('data_preprocessor', None) is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if not isinstance(model, SandwichSupernet):
        raise UserError(f'model.type: {type(model).__name__} is not a '
                        'SandwichSupernet (give the supernet config)')
    state = extract_state_dict(checkpoint, what='supernet checkpoint')
    load_state_dict_strict(model, state, checkpoint,
                           'the supernet of the config')
    return model.eval()


def recalibrate(model: SandwichSupernet, backbone: torch.nn.Module,
                cfg: Config, num_batches: int, device: str) -> int:
    """Re-estimate the BN statistics of ``backbone`` on training batches.

    Seeded (``randomness.seed`` of the config, else 0): the same command
    gives the same statistics.
    """
    if cfg.get('train_dataloader', None) is None:
        raise UserError('--calibrate-batches: the config has no '
                        'train_dataloader (use --calibrate-batches 0 to '
                        "keep the supernet's statistics)")
    seed = cfg.get('randomness', {}).get('seed', None)
    seed = 0 if seed is None else seed
    set_random_seed(seed)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    model.to(device)
    backbone.to(device)

    def forward(batch):
        return backbone(model.data_preprocessor(batch, False)['inputs'])

    used = recalibrate_bn(backbone, loader, forward, num_batches)
    backbone.cpu()
    return used


def space_for_config(cfg: Config, meta: Dict[str, Any]) -> Any:
    """The supernet config's space name if built in, else the dict."""
    name = cfg.model.get('backbone', {}).get('search_space', None)
    return name if name in BUILTIN_SPACES else meta['search_space']


def write_subnet_config(path: str,
                        base: str,
                        checkpoint: str,
                        search_space: Any,
                        meta: Dict[str, Any],
                        data_preprocessor: Optional[dict] = None) -> None:
    """Write a config inheriting ``base`` with the exported subnet set.

    The backbone is replaced as a whole (``_delete_=True``: a spec or space
    dict cannot merge into a name), keeping the other options of ``base``
    but those the weights need (``weight_norm``, ``stem_quantize_input``).
    ``data_preprocessor`` (the supernet config's) replaces the base's: the
    weights and BN statistics hold for the supernet's input normalization.
    """
    backbone = dict(_delete_=True)
    backbone.update(Config.fromfile(base).model.backbone.to_dict())
    backbone.update(
        arch=meta['arch'],
        search_space=search_space,
        weight_norm=meta['weight_norm'],
        stem_quantize_input=meta['stem_quantize_input'])
    model = dict(
        backbone=backbone,
        head=dict(
            in_channels=meta['out_channels'][-1],
            num_classes=meta['num_classes']))
    text = (f'# Written by tools/export_subnet.py: {meta["name"]}, '
            f'{meta["ops_m"]:.4g}M OPs.\n'
            f'_base_ = [{osp.abspath(base)!r}]\n\n'
            f'model = {pprint.pformat(model, width=72, sort_dicts=False)}\n'
            f'load_from = {osp.abspath(checkpoint)!r}\n')
    if data_preprocessor is not None:
        preprocessor = dict(_delete_=True, **data_preprocessor)
        text += ('data_preprocessor = '
                 f'{pprint.pformat(preprocessor, width=72, sort_dicts=False)}'
                 '\n')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def export(args: argparse.Namespace) -> Tuple[str, Dict[str, Any]]:
    """Run the export; returns the checkpoint path and its ``meta``."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    supernet = build_supernet(cfg, args.checkpoint)
    extra: Dict[str, Any] = dict(name=args.name)
    if args.pareto is not None:
        entry = pick_from_pareto(args.pareto, args.ops)
        arch = entry['arch']
        extra.update(
            pareto=osp.abspath(args.pareto),
            pareto_ops_m=float(entry['ops_m']))
        if isinstance(entry.get('top1', None), (int, float)):
            extra['pareto_top1'] = float(entry['top1'])
    else:
        arch = args.arch
    try:
        arch = supernet.resolve_subnet(arch)
    except ValueError as e:
        raise UserError(f'{args.pareto or "--arch"}: {e}') from None
    backbone, fc = export_subnet(supernet.backbone, supernet.head, arch)
    num_batches = args.calibrate_batches
    if num_batches is None:
        num_batches = cfg.get('test_cfg', {}).get('calibrate_batches', 10)
        is_count = isinstance(num_batches,
                              int) and not isinstance(num_batches, bool)
        if not is_count or num_batches < 0:
            raise UserError(f'{args.config}: test_cfg.calibrate_batches: '
                            f'{num_batches!r} must be an integer >= 0 (or '
                            'give --calibrate-batches)')
    extra['calibrate_batches'] = 0
    if num_batches:
        extra['calibrate_batches'] = recalibrate(supernet, backbone, cfg,
                                                 num_batches, args.device)
    extra.update(
        supernet_checkpoint=osp.abspath(args.checkpoint),
        supernet_config=osp.abspath(args.config))
    ckpt = subnet_checkpoint(backbone.eval(), fc, extra)
    os.makedirs(args.out, exist_ok=True)
    path = osp.join(args.out, f'{args.name}.pth')
    save_atomic(ckpt, path)
    dump_arch(backbone.arch, osp.join(args.out, ARCH_FILE))
    meta = ckpt['meta']
    if args.subnet_config is not None:
        preprocessor = cfg.get('data_preprocessor', None)
        write_subnet_config(
            osp.join(args.out,
                     f'{args.name}_cfg.py'), args.subnet_config, path,
            space_for_config(cfg, meta), meta,
            None if preprocessor is None else preprocessor.to_dict())
    return path, meta


def run(args: argparse.Namespace) -> int:
    """Export and print one line about it; returns the exit status."""
    path, meta = export(args)
    print(f'exported {meta["arch"]} ({meta["ops_m"]:.4g}M OPs, BN '
          f'recalibrated on {meta["calibrate_batches"]} batches) to {path}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_tool(TOOL, lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
