"""Count the OPs of a NAS-BNN subnet or of a whole model as the paper does.

``OPs = FLOPs + Int8OPs / 8 + BOPs / 64`` (see ``docs/search_space.md``);
prints a per-layer table and the totals, or with ``--json`` only one JSON
object ``{"flops_m", "int8ops_m", "bops_m", "ops_m"}`` (millions).

ARCH is a Table 6 preset or an arch spec file (counted analytically in a
search space), or a model config (``.py`` with a ``model``): the model is
built and every conv/linear layer is counted by running it once at
``--input-size`` (binary, 8-bit and full-precision layers recognised by
type), first padded up to the model's
``data_preprocessor.pad_size_divisor`` as the data preprocessor pads
(mmdet's Faster R-CNN: 800x1333 is counted at 800x1344). For a two-stage
detector, the backbone, neck and RPN run on the image and the RoI head is
counted for ``test_cfg.rpn.max_per_img`` proposals. A model config also
gets the totals of each top-level part (backbone, neck, rpn_head,
roi_head...): a table after the layers, and ``"parts"`` in the JSON object.
See ``docs/detection.md`` for the detectors' counts.

Example::

    python tools/analysis_tools/get_ops.py B
    python tools/analysis_tools/get_ops.py my_arch.yaml \\
        --space configs/_base_/search_spaces/nasbnn_digits.py --json
    python tools/analysis_tools/get_ops.py \\
        configs/nasbnn_det/faster-rcnn_nasbnn-b_fpn_1x_coco.py \\
        --input-size 800 1333
    python tools/analysis_tools/get_ops.py \\
        configs/width_search/vgg-small_4x_8xb32-200e_cifar10.py \\
        --input-size 32 --cfg-options model.backbone.expand_ratios=1
"""
import argparse
import dataclasses
import json
import sys
from typing import List, Optional, Tuple

import torch
from mmengine.config import DictAction

from nasbnn_mm.engine import check_neck_in_channels
from nasbnn_mm.nas import (DEFAULT_SPACE, OpsReport, SearchSpace,
                           count_arch_ops, count_module_ops, load_arch)
from nasbnn_mm.utils.errors import UserError, error_line, is_user_error


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Count the OPs of a NAS-BNN subnet')
    parser.add_argument(
        'arch',
        help='a preset of Table 6 (A, B, C, D, E, F), an arch spec file '
        '(.json, .yaml) or a model config (.py)')
    parser.add_argument(
        '--space',
        default=DEFAULT_SPACE,
        help='search space: a built-in name or a config file defining '
        f'`search_space` (default: {DEFAULT_SPACE})')
    parser.add_argument(
        '--input-size',
        type=int,
        nargs='+',
        metavar='N',
        help='input size, N or H W (default: the space\'s input_size)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of a model config, e.g. '
        'model.backbone.expand_ratios=2')
    parser.add_argument(
        '--json',
        action='store_true',
        help='print only one JSON object with flops_m, int8ops_m, bops_m '
        'and ops_m (millions)')
    args = parser.parse_args(argv)
    if args.cfg_options and not args.arch.endswith('.py'):
        parser.error('--cfg-options: only for a model config (.py), got '
                     f'{args.arch!r}')
    if args.input_size is not None and len(args.input_size) not in (1, 2):
        parser.error('--input-size: expected N or H W, got '
                     f'{len(args.input_size)} values')
    return args


def padded_size(size: Tuple[int, int], divisor: int) -> Tuple[int, int]:
    """Round ``(H, W)`` up to multiples of ``divisor``, as mmdet pads."""
    return tuple(-(-s // divisor) * divisor for s in size)


def count_model_ops(
        config: str,
        size: Tuple[int, int],
        cfg_options: Optional[dict] = None) -> Tuple[OpsReport, tuple]:
    """Build the model of an mm config and count it at ``size`` (H, W).

    Returns:
        tuple: The report and the ``(H, W)`` counted: ``size`` padded to
        the model's ``data_preprocessor.pad_size_divisor`` (if any).
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise UserError(f'{config}: no `model` in the config')
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    model = MODELS.build(cfg.model)
    check_neck_in_channels(model)
    preprocessor = cfg.model.get('data_preprocessor') or {}
    size = padded_size(size, preprocessor.get('pad_size_divisor', 1))
    roi_head = getattr(model, 'roi_head', None)
    if roi_head is None:
        forward = getattr(model, 'extract_feat', None)
        return count_module_ops(model, (3, *size), forward), size
    num_rois = cfg.model.test_cfg.rpn.max_per_img

    def forward(image: torch.Tensor) -> None:
        feats = model.extract_feat(image)
        model.rpn_head(feats)
        # one RoI at the image centre; the RoI rows are scaled below
        h, w = image.shape[2:]
        rois = image.new_tensor([[0, w / 4, h / 4, 3 * w / 4, 3 * h / 4]])
        roi_head._bbox_forward(feats, rois)

    report = count_module_ops(model, (3, *size), forward)
    report.rows = [
        dataclasses.replace(row, macs=row.macs * num_rois)
        if row.name.startswith('roi_head.') else row for row in report.rows
    ]
    return report, size


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    size = args.input_size
    if size is not None and len(size) == 1:
        size = size * 2
    try:
        if args.arch.endswith('.py'):
            if size is None:
                raise UserError('--input-size: required to count a model '
                                'config, e.g. --input-size 800 1333')
            report, counted = count_model_ops(args.arch, tuple(size),
                                              args.cfg_options)
        else:
            space = SearchSpace.from_config(args.space)
            report = count_arch_ops(load_arch(args.arch), space, size)
    except Exception as e:  # noqa: B902 (told apart by is_user_error)
        if not is_user_error(e):
            raise
        print(f'get_ops.py: error: {error_line(e)}', file=sys.stderr)
        sys.exit(2)
    if not args.arch.endswith('.py'):
        print(json.dumps(report.summary()) if args.json else report.table())
        return
    parts = report.parts()
    if args.json:
        summary = report.summary()
        summary['input_size'] = list(counted)
        summary['parts'] = {k: v.summary() for k, v in parts.items()}
        print(json.dumps(summary))
        return
    print(report.table())
    print(f'\ncounted at {counted[0]}x{counted[1]} (input '
          f'{size[0]}x{size[1]}):')
    print(report.parts_table())
    if 'backbone' in parts and len(parts) > 1:
        rest = report.ops - parts['backbone'].ops
        print(f'all but the backbone: {rest / 1e6:.2f}M OPs = '
              f'{rest / parts["backbone"].ops:.2f} x the backbone')


if __name__ == '__main__':
    main()
