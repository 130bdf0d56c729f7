"""Convert an official NAS-BNN supernet checkpoint for nasbnn_mm.

The official code (github.com/VDIGPKU/NAS-BNN) saves
``{'state_dict': ..., 'epoch': ..., ...}``; the result holds
``{'state_dict': <SandwichSupernet keys>, 'meta': {...}}`` and loads with
``torch.load(weights_only=True)``. ``meta['nasbnn_conventions']`` records
the official conventions (``weight_norm='official'``,
``stem_quantize_input=False``, ``group_slicing='cyclic'``,
``bi_transform='max_kernel'``, the search space): ``tools/search.py``,
``tools/export_subnet.py`` and ``SupernetInit`` build the supernet from
them, so no config names them.

Example::

    python tools/model_converters/nasbnn_official_to_mm.py \
        checkpoint.pth.tar nasbnn_supernet_official.pth
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from nasbnn_mm.models.utils.official_converter import (
    convert_official_state_dict, official_conventions)
from nasbnn_mm.utils import UserError
from nasbnn_mm.utils.checkpoint import (extract_state_dict, read_checkpoint,
                                        save_atomic)
from nasbnn_mm.utils.conventions import add_conventions
from nasbnn_mm.utils.errors import run_tool

TOOL = 'nasbnn_official_to_mm.py'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=TOOL, description=__doc__.split('\n')[1])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='converted checkpoint')
    parser.add_argument(
        '--search-space',
        default='nasbnn_in1k',
        help='search space of the official supernet (a built-in name or '
        'a config file); default: nasbnn_in1k, the released one')
    return parser.parse_args(argv)


def convert(src: str, dst: str, search_space: str = 'nasbnn_in1k') -> str:
    """Convert ``src`` into ``dst``; returns the summary line.

    Raises:
        UserError: If ``src`` cannot be read, a key has no counterpart or
            the folder of ``dst`` does not exist.
    """
    what = 'official checkpoint'
    checkpoint = read_checkpoint(src, what)
    state_dict = extract_state_dict(checkpoint, what=what)
    try:
        converted = convert_official_state_dict(state_dict)
    except KeyError as e:
        raise UserError(f'{src}: {e.args[0]}') from None
    meta = dict(source=osp.basename(src), converter='nasbnn_official')
    if isinstance(checkpoint.get('epoch'), int):
        meta['epoch'] = checkpoint['epoch']
    meta = add_conventions(meta, official_conventions(search_space))
    save_atomic(dict(state_dict=converted, meta=meta), dst)
    return f'converted {len(state_dict)} -> {len(converted)} tensors: {dst}'


def run(args: argparse.Namespace) -> int:
    print(convert(args.src, args.dst, args.search_space))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_tool(TOOL, lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
