"""Pack an exported NAS-BNN subnet for real 1-bit CPU inference.

Reads a static subnet checkpoint written by ``tools/export_subnet.py`` (an
MMPretrain ``ImageClassifier`` checkpoint: ``backbone.*``, ``head.fc.*``,
``meta.arch`` and the conventions its weights were exported with,
``meta.nasbnn_conventions``: weight normalization, stem input quantization,
search space), folds every binary convolution with its BN into sign bits
(1 bit per weight) and a per-channel affine, and saves a
:class:`~nasbnn_mm.deploy.PackedNASBNN` file. Every convention comes from
the checkpoint; nothing on the command line overrides them. It then loads
the file back and, with ``--verify``, compares the packed logits with those
of the float subnet the checkpoint describes: on validation images of
``--config`` (its ``val_dataloader`` and ``data_preprocessor``) when given,
else on a random batch; and against the float subnet run in float64. Prints
one JSON line (sizes, differences, sign flips, kernel path).

``--preset`` packs a Table-6 preset with untrained weights instead (file
sizes and latency do not depend on the weights).

Examples::

    python tools/deploy/pack_subnet.py work_dirs/export/subnet.pth \\
        --out work_dirs/export/subnet_packed.pth --verify \\
        --config work_dirs/export/subnet_cfg.py
    python tools/deploy/pack_subnet.py --preset B --out b_packed.pth
"""
import argparse
import itertools
import json
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from mmengine.utils import import_modules_from_strings

from nasbnn_mm.deploy import (PackedNASBNN, load_packed, pack_nasbnn,
                              save_packed)
from nasbnn_mm.models import NASBNN
from nasbnn_mm.nas import DEFAULT_SPACE
from nasbnn_mm.ops import kernel_path
from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.checkpoint import (extract_state_dict,
                                        load_state_dict_strict,
                                        read_checkpoint)
from nasbnn_mm.utils.conventions import checkpoint_conventions
from nasbnn_mm.utils.errors import run_tool

TOOL = 'pack_subnet.py'
# Conventions a static subnet's weights depend on.
_NEEDED = ('weight_norm', 'stem_quantize_input', 'search_space')
# |x + b| below which float32 rounding of the folded affine (relative
# error ~1e-7 of values up to ~10) can flip a binary activation.
NEAR_ZERO = 1e-5


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=TOOL,
        description='Pack an exported NAS-BNN subnet (1 bit per binary '
        'weight) for CPU inference')
    parser.add_argument(
        'checkpoint', nargs='?', help='subnet checkpoint (export_subnet)')
    parser.add_argument(
        '--preset',
        help='pack this preset (A..F) with untrained weights instead')
    parser.add_argument('--out', required=True, help='packed file to write')
    parser.add_argument(
        '--search-space',
        help=f'space of --preset (default {DEFAULT_SPACE}); a checkpoint '
        'brings its own')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare packed and float logits (on --config validation '
        'images, else a random batch)')
    parser.add_argument(
        '--config',
        help='with --verify: a classification config (e.g. the '
        "<name>_cfg.py of export_subnet.py) whose val_dataloader's images "
        'are compared')
    parser.add_argument(
        '--num-batches',
        type=int,
        default=4,
        help='validation batches compared with --config (default 4)')
    parser.add_argument(
        '--input-size',
        type=int,
        help="H = W of the random verification batch (default: the "
        "space's)")
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.preset is None):
        parser.error('give a checkpoint or --preset, not both')
    if args.checkpoint is not None and args.search_space is not None:
        parser.error('--search-space is only for --preset: a checkpoint '
                     'brings its search space (meta.nasbnn_conventions)')
    if args.preset is not None and args.verify:
        # NOTE: with untrained weights (identity BN, zero shifts) many
        # pre-sign values are exact integer ties such as 0 + 1e-9 float
        # noise, so float models disagree with each other there.
        parser.error('--verify needs a trained checkpoint: untrained presets '
                     'have exact sign ties that float32 and float64 break '
                     'differently')
    if args.config is not None and not args.verify:
        parser.error('--config is only used with --verify')
    if args.num_batches < 1:
        parser.error(f'--num-batches: {args.num_batches} must be >= 1')
    return args


def subnet_conventions(path: str, meta: Dict[str, Any]) -> Dict[str, Any]:
    """The conventions of an exported subnet checkpoint.

    ``meta.nasbnn_conventions``; exports written before it existed have
    ``meta.weight_norm``, ``meta.stem_quantize_input`` and
    ``meta.search_space``.

    Raises:
        UserError: If the checkpoint records no weight normalization or
            stem quantization (the float subnet would be a guess).
    """
    conventions = checkpoint_conventions(dict(meta=meta))
    for name in _NEEDED:
        if name not in conventions and name in meta:
            conventions[name] = meta[name]
    missing = [n for n in _NEEDED if n not in conventions]
    if missing:
        raise UserError(
            f'{path}: meta records no {", ".join(missing)}; export the '
            'subnet again with tools/export_subnet.py (its weights mean '
            'different networks under different conventions)')
    return conventions


def build_float(
    args: argparse.Namespace
) -> Tuple[NASBNN, Optional[nn.Linear], Dict[str, Any]]:
    """The float subnet (eval mode) the checkpoint describes, its
    classifier and the source meta."""
    if args.preset is not None:
        space = args.search_space or DEFAULT_SPACE
        backbone = NASBNN(args.preset, space).eval()
        return backbone, None, dict(preset=args.preset, trained=False)
    what = 'subnet checkpoint'
    ckpt = read_checkpoint(args.checkpoint, what)
    meta = dict(ckpt.get('meta') or {})
    if 'arch' not in meta:
        raise UserError(f'{args.checkpoint}: no meta.arch; not a subnet '
                        'checkpoint of tools/export_subnet.py')
    conventions = subnet_conventions(args.checkpoint, meta)
    backbone = NASBNN(
        meta['arch'],
        conventions['search_space'],
        weight_norm=conventions['weight_norm'],
        stem_quantize_input=conventions['stem_quantize_input']).eval()
    state = extract_state_dict(ckpt, 'backbone.', what, bare_ok=True)
    load_state_dict_strict(backbone, {
        k: v
        for k, v in state.items() if not k.startswith('head.')
    }, args.checkpoint, f'the NASBNN of meta.arch {meta["arch"]}')
    fc = None
    if 'head.fc.weight' in extract_state_dict(ckpt, what=what):
        fc_state = extract_state_dict(ckpt, 'head.fc.', what)
        weight = fc_state['weight']
        fc = nn.Linear(weight.shape[1], weight.shape[0])
        load_state_dict_strict(fc, fc_state, args.checkpoint,
                               'a linear classifier')
    source = dict(
        checkpoint=osp.abspath(args.checkpoint),
        trained=True,
        weight_norm=conventions['weight_norm'],
        stem_quantize_input=conventions['stem_quantize_input'])
    source.update({
        k: meta[k]
        for k in ('name', 'ops_m', 'calibrate_batches') if k in meta
    })
    return backbone, fc, source


@torch.no_grad()
def float64_features(backbone: NASBNN, x: torch.Tensor) -> torch.Tensor:
    """Last features with the binary stages run in float64.

    The 8-bit stem stays in float32: its ``round(x / step)`` depends on
    the precision, and the packed model runs it in float32 too.
    """
    y = backbone.stem(x).double()
    backbone.stages.double()
    try:
        for blocks in backbone.stages:
            for block in blocks:
                y = block(y)
    finally:
        backbone.stages.float()
    return y


def val_batches(config: str, num_batches: int,
                seed: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Preprocessed images (N, C, H, W) and labels (N, ) of the first
    ``num_batches`` batches of the config's ``val_dataloader``."""
    cfg = Config.fromfile(config)
    if cfg.get('val_dataloader', None) is None:
        raise UserError(f'--config {config}: no val_dataloader')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if cfg.get('custom_imports', None):
        import_modules_from_strings(**cfg.custom_imports)
    preprocessor = dict(type='mmpretrain.ClsDataPreprocessor')
    preprocessor.update(
        cfg.get('data_preprocessor', None)
        or cfg.model.get('data_preprocessor', None) or {})
    preprocessor = MODELS.build(preprocessor)
    loader = Runner.build_dataloader(cfg.val_dataloader, seed=seed)
    batches = []
    for batch in itertools.islice(loader, num_batches):
        data = preprocessor(batch, False)
        labels = torch.cat(
            [sample.gt_label.view(-1) for sample in data['data_samples']])
        batches.append((data['inputs'].float(), labels))
    return batches


@torch.no_grad()
def sign_flips(backbone: NASBNN, packed: PackedNASBNN,
               x: torch.Tensor) -> Dict[str, Any]:
    """Binary activations at the block inputs that the packed model and
    the float model disagree on.

    Both run from the same images; at each block's first RSign the signs
    of ``x + b`` are compared. Returns the count (``sign_flips``), the
    number of signs compared, how many of the float model's ``x + b`` lie
    within ``NEAR_ZERO`` of 0 (where float rounding can flip a sign), the
    largest ``|x + b|`` at a flip and the first block (in order over all
    stages) with a flip.
    """
    f, p = backbone.stem(x), packed.stem(x)
    flips, total, near, margin, first = 0, 0, 0, 0.0, None
    blocks = zip(
        itertools.chain(*backbone.stages), itertools.chain(*packed.stages))
    for i, (float_block, packed_block) in enumerate(blocks):
        shifted = f + float_block.sign1.bias.view(1, -1, 1, 1)
        flipped = (shifted >= 0) != (
            p + packed_block.sign1.bias.view(1, -1, 1, 1) >= 0)
        if flipped.any():
            first = i if first is None else first
            margin = max(margin, shifted[flipped].abs().max().item())
        flips += int(flipped.sum())
        total += flipped.numel()
        near += int((shifted.abs() < NEAR_ZERO).sum())
        f, p = float_block(f), packed_block(p)
    return dict(
        sign_flips=flips,
        signs=total,
        near_zero_signs=near,
        sign_flip_max_abs_preactivation=margin,
        first_flip_block=first)


@torch.no_grad()
def verify(
    backbone: NASBNN, fc: Optional[nn.Linear], packed_path: str,
    batches: List[Tuple[torch.Tensor,
                        Optional[torch.Tensor]]]) -> Dict[str, Any]:
    """Compare the packed file with its float model on ``batches``.

    Returns:
        dict: Max |packed - float32| of the last features and logits, both
        against the binary stages run in float64, argmax agreement and
        top-1 of both (when labelled), and the :func:`sign_flips` summed
        over the batches.
    """
    packed = load_packed(packed_path)
    report: Dict[str, Any] = dict(
        sign_flips=0,
        signs=0,
        near_zero_signs=0,
        sign_flip_max_abs_preactivation=0.0,
        first_flip_block=None)

    def worst(key: str, a: torch.Tensor, b: torch.Tensor) -> None:
        value = (a.double() - b.double()).abs().max().item()
        report[key] = max(report.get(key, 0.0), value)

    agree = correct = correct_packed = images = 0
    for x, labels in batches:
        feat = backbone(x)[-1]
        feat64 = float64_features(backbone, x)
        worst('feature_max_abs_diff', packed(x)[-1], feat)
        worst('feature_max_abs_diff_vs_float64', packed(x)[-1], feat64)
        worst('float32_feature_max_abs_diff_vs_float64', feat, feat64)
        flips = sign_flips(backbone, packed, x)
        for key in ('sign_flips', 'signs', 'near_zero_signs'):
            report[key] += flips[key]
        report['sign_flip_max_abs_preactivation'] = max(
            report['sign_flip_max_abs_preactivation'],
            flips['sign_flip_max_abs_preactivation'])
        if report['first_flip_block'] is None:
            report['first_flip_block'] = flips['first_flip_block']
        if fc is None:
            continue
        logits = fc(feat.mean((2, 3)))
        logits64 = fc.double()(feat64.mean((2, 3)))
        fc.float()
        packed_logits = packed.logits(x)
        worst('logits_max_abs_diff', packed_logits, logits)
        worst('logits_max_abs_diff_vs_float64', packed_logits, logits64)
        worst('float32_logits_max_abs_diff_vs_float64', logits, logits64)
        agree += int((packed_logits.argmax(1) == logits.argmax(1)).sum())
        images += x.shape[0]
        if labels is not None:
            correct += int((logits.argmax(1) == labels).sum())
            correct_packed += int((packed_logits.argmax(1) == labels).sum())
    if fc is not None:
        report.update(verified_images=images, argmax_agreement=agree / images)
        if batches[0][1] is not None:
            report.update(
                float_top1=100.0 * correct / images,
                packed_top1=100.0 * correct_packed / images)
    return report


def random_batch(backbone: NASBNN, size: int, batch: int,
                 seed: int) -> List[Tuple[torch.Tensor, None]]:
    """One random batch (no labels)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(
        batch, backbone.space.in_channels, size, size, generator=gen)
    return [(x, None)]


def run(args: argparse.Namespace) -> int:
    """Pack, reload, optionally verify; print the JSON report."""
    try:
        kernels = kernel_path()
    except ValueError as e:  # NASBNN_BINARY_KERNEL names no kernel path
        raise UserError(f'NASBNN_BINARY_KERNEL: {e}') from e
    backbone, fc, source = build_float(args)
    size = args.input_size or backbone.space.input_size[0]
    with torch.no_grad():
        # NOTE: the LSQ steps of an untrained stem initialise on its first
        # forward: give it an image-like batch (zeros would set them to eps).
        gen = torch.Generator().manual_seed(args.seed + 1)
        backbone(
            torch.randn(
                1, backbone.space.in_channels, size, size, generator=gen))
    packed = pack_nasbnn(backbone, fc)
    file_bytes = save_packed(packed, args.out, source)
    reloaded = load_packed(args.out)
    for key, value in packed.state_dict().items():
        if not torch.equal(reloaded.state_dict()[key], value):
            print(
                f'{TOOL}: error: {args.out}: {key} differs after reloading',
                file=sys.stderr)
            return 1
    report: Dict[str, Any] = dict(
        out=osp.abspath(args.out),
        arch=backbone.arch.to_dict(),
        file_bytes=file_bytes,
        kernel_path=kernels,
        **packed.size_report())
    if args.verify:
        if args.config is not None:
            batches = val_batches(args.config, args.num_batches, args.seed)
            report['verified_on'] = f'val_dataloader of {args.config}'
        else:
            batches = random_batch(backbone, size, args.batch, args.seed)
            report['verified_on'] = 'a random batch'
        report.update(verify(backbone, fc, args.out, batches))
    print(json.dumps(report))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_tool(TOOL, lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
