"""Count the architectures of a search space exactly, with and without ND.

Dynamic programming over layer widths (no enumeration); with ``--json``
prints only ``{"total": <int>, "non_decreasing": <int>}``. A space that
cannot be loaded (a bad file or field, a stage whose groups divide none of
its widths) prints one line and exits with status 2.

Example::

    python tools/analysis_tools/space_size.py
    python tools/analysis_tools/space_size.py \\
        configs/_base_/search_spaces/nasbnn_digits.py --json
"""
import argparse
import json
import sys
from typing import List, Optional

from nasbnn_mm.nas import DEFAULT_SPACE, SearchSpace
from nasbnn_mm.utils.errors import run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Count the architectures of a search space')
    parser.add_argument(
        'space',
        nargs='?',
        default=DEFAULT_SPACE,
        help='a built-in name or a config file defining `search_space` '
        f'(default: {DEFAULT_SPACE})')
    parser.add_argument(
        '--json',
        action='store_true',
        help='print only one JSON object with total and non_decreasing')
    return parser.parse_args(argv)


def count(args: argparse.Namespace) -> int:
    """Load the space (checked when loaded) and print its sizes."""
    space = SearchSpace.from_config(args.space)
    total = space.size(non_decreasing=False)
    nd = space.size(non_decreasing=True)
    if args.json:
        print(json.dumps(dict(total=total, non_decreasing=nd)))
        return 0
    print(f'search space: {args.space}')
    print(f'total:          {total} ({total:.2e})')
    print(f'non-decreasing: {nd} ({nd:.2e}, {100 * nd / total:.4f}% of '
          'total)')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_tool('space_size.py', lambda: count(args))


if __name__ == '__main__':
    sys.exit(main())
