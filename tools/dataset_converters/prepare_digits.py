"""Make the embedded digits datasets (classification + COCO detection).

Example::

    python tools/dataset_converters/prepare_digits.py --out data/digits
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

from nasbnn_mm.datasets.digits import prepare_digits
from nasbnn_mm.utils.errors import UserError, run_tool


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the sklearn digits as an MMPretrain '
        'classification set and a COCO-format detection set.')
    parser.add_argument('--out', default='data/digits', help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-size', type=int, default=32)
    parser.add_argument(
        '--search-val-per-class',
        type=int,
        default=5,
        help='training images per class held out as search_val (more '
        'rank search candidates more finely, fewer are left to train on)')
    parser.add_argument('--train-canvases', type=int, default=800)
    parser.add_argument('--val-canvases', type=int, default=200)
    parser.add_argument('--canvas-size', type=int, default=128)
    return parser.parse_args()


def check_out_folder(out: str) -> None:
    """Say in one line why ``--out`` cannot be written, before writing."""
    if osp.exists(out) and not osp.isdir(out):
        raise UserError(f'--out {out}: is a file, expected a folder')
    existing = osp.abspath(out)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        raise UserError(f'--out {out}: {existing} is a file, not a folder')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f'--out {out}: {existing} is not writable')


def prepare(args: argparse.Namespace) -> int:
    start = time.time()
    check_out_folder(args.out)
    meta = prepare_digits(
        args.out,
        seed=args.seed,
        image_size=args.image_size,
        search_val_per_class=args.search_val_per_class,
        num_train_canvases=args.train_canvases,
        num_val_canvases=args.val_canvases,
        canvas_size=args.canvas_size)
    print(json.dumps(meta))
    print(f'wrote {args.out} in {time.time() - start:.1f}s')
    return 0


def main() -> int:
    args = parse_args()
    return run_tool('prepare_digits.py', lambda: prepare(args))


if __name__ == '__main__':
    sys.exit(main())
