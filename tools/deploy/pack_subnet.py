"""Pack an exported NAS-BNN subnet for real 1-bit CPU inference.

Reads a static subnet checkpoint written by ``tools/export_subnet.py`` (an
MMPretrain ``ImageClassifier`` checkpoint: ``backbone.*``, ``head.fc.*``,
``meta.arch``, ``meta.search_space``), folds every binary convolution with
its BN into sign bits (1 bit per weight) and a per-channel affine, and saves
a :class:`~nasbnn_mm.deploy.PackedNASBNN` file. It then loads the file back
and, with ``--verify``, compares the packed logits with the float subnet's
on a random batch (and with the float subnet run in float64). Prints one
JSON line (sizes, differences, kernel path).

``--preset`` packs a Table-6 preset with untrained weights instead (file
sizes and latency do not depend on the weights).

Examples::

    python tools/deploy/pack_subnet.py work_dirs/export/subnet.pth \\
        --out work_dirs/export/subnet_packed.pth --verify
    python tools/deploy/pack_subnet.py --preset B --out b_packed.pth
"""
import argparse
import json
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from nasbnn_mm.deploy import load_packed, pack_nasbnn, save_packed
from nasbnn_mm.models import NASBNN
from nasbnn_mm.nas import DEFAULT_SPACE
from nasbnn_mm.ops import kernel_path
from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.checkpoint import (extract_state_dict,
                                        load_state_dict_strict,
                                        read_checkpoint)
from nasbnn_mm.utils.errors import run_tool

TOOL = 'pack_subnet.py'


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
        help="space of the subnet (default: the checkpoint's meta, else "
        f'{DEFAULT_SPACE})')
    parser.add_argument(
        '--no-weight-norm',
        action='store_true',
        help='the float subnet was trained without weight normalization')
    parser.add_argument(
        '--no-stem-quantize-input',
        action='store_true',
        help="the float subnet's stem does not quantize its input")
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare packed and float logits on a random batch')
    parser.add_argument(
        '--input-size',
        type=int,
        help="H = W of the verification batch (default: the space's)")
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.preset is None):
        parser.error('give a checkpoint or --preset, not both')
    if args.preset is not None and args.verify:
        # NOTE: with untrained weights (identity BN, zero shifts) many
        # pre-sign values are exact integer ties such as 0 + 1e-9 float
        # noise, so float models disagree with each other there.
        parser.error('--verify needs a trained checkpoint: untrained presets '
                     'have exact sign ties that float32 and float64 break '
                     'differently')
    return args


def build_float(
    args: argparse.Namespace
) -> Tuple[NASBNN, Optional[nn.Linear], Dict[str, Any]]:
    """The float subnet (eval mode), its classifier and the source meta."""
    options = dict(
        weight_norm=not args.no_weight_norm,
        stem_quantize_input=not args.no_stem_quantize_input)
    if args.preset is not None:
        space = args.search_space or DEFAULT_SPACE
        backbone = NASBNN(args.preset, space, **options).eval()
        return backbone, None, dict(preset=args.preset, trained=False)
    what = 'subnet checkpoint'
    ckpt = read_checkpoint(args.checkpoint, what)
    meta = dict(ckpt.get('meta') or {})
    if 'arch' not in meta:
        raise UserError(f'{args.checkpoint}: no meta.arch; not a subnet '
                        'checkpoint of tools/export_subnet.py')
    space = args.search_space or meta.get('search_space', DEFAULT_SPACE)
    backbone = NASBNN(meta['arch'], space, **options).eval()
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
    source = dict(checkpoint=osp.abspath(args.checkpoint), trained=True)
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


@torch.no_grad()
def verify(backbone: NASBNN, fc: Optional[nn.Linear], packed_path: str,
           size: int, batch: int, seed: int) -> Dict[str, float]:
    """Max |packed - float32| of the last features and logits, and both
    against the binary stages run in float64."""
    packed = load_packed(packed_path)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(
        batch, backbone.space.in_channels, size, size, generator=gen)
    feat = backbone(x)[-1]
    feat64 = float64_features(backbone, x)
    out = packed(x)[-1]

    def diff(a: torch.Tensor, b: torch.Tensor) -> float:
        return (a.double() - b.double()).abs().max().item()

    report = dict(
        feature_max_abs_diff=diff(out, feat),
        feature_max_abs_diff_vs_float64=diff(out, feat64),
        float32_feature_max_abs_diff_vs_float64=diff(feat, feat64))
    if fc is not None:
        logits = fc(feat.mean((2, 3)))
        logits64 = fc.double()(feat64.mean((2, 3)))
        fc.float()
        packed_logits = packed.logits(x)
        report.update(
            logits_max_abs_diff=diff(packed_logits, logits),
            logits_max_abs_diff_vs_float64=diff(packed_logits, logits64),
            float32_logits_max_abs_diff_vs_float64=diff(logits, logits64))
    return report


def run(args: argparse.Namespace) -> int:
    """Pack, reload, optionally verify; print the JSON report."""
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
        kernel_path=kernel_path(),
        **packed.size_report())
    if args.verify:
        report.update(
            verify(backbone, fc, args.out, size, args.batch, args.seed))
    print(json.dumps(report))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_tool(TOOL, lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
