"""Count the OPs of a NAS-BNN subnet as the paper does.

``OPs = FLOPs + Int8OPs / 8 + BOPs / 64`` (see ``docs/search_space.md``);
prints a per-layer table and the totals, or with ``--json`` only one JSON
object ``{"flops_m", "int8ops_m", "bops_m", "ops_m"}`` (millions).

Example::

    python tools/analysis_tools/get_ops.py B
    python tools/analysis_tools/get_ops.py my_arch.yaml \\
        --space configs/_base_/search_spaces/nasbnn_digits.py --json
"""
import argparse
import json
import sys
from typing import List, Optional

from nasbnn_mm.nas import (DEFAULT_SPACE, OpsReport, SearchSpace,
                           count_arch_ops, load_arch)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Count the OPs of a NAS-BNN subnet')
    parser.add_argument(
        'arch',
        help='a preset of Table 6 (A, B, C, D, E, F) or an arch spec file '
        '(.json, .yaml)')
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
        '--json',
        action='store_true',
        help='print only one JSON object with flops_m, int8ops_m, bops_m '
        'and ops_m (millions)')
    args = parser.parse_args(argv)
    if args.input_size is not None and len(args.input_size) not in (1, 2):
        parser.error('--input-size: expected N or H W, got '
                     f'{len(args.input_size)} values')
    return args


def count_ops(args: argparse.Namespace) -> OpsReport:
    """Count the subnet named by ``args.arch`` in ``args.space``."""
    space = SearchSpace.from_config(args.space)
    size = args.input_size
    if size is not None and len(size) == 1:
        size = size * 2
    return count_arch_ops(load_arch(args.arch), space, size)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        report = count_ops(args)
    except ValueError as e:
        sys.exit(f'get_ops.py: error: {e}')
    if args.json:
        print(json.dumps(report.summary()))
    else:
        print(report.table())


if __name__ == '__main__':
    main()
