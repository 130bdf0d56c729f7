"""Convert an official NAS-BNN supernet checkpoint for nasbnn_mm.

The official code (github.com/VDIGPKU/NAS-BNN) saves
``{'state_dict': ..., 'epoch': ..., ...}``; the result holds
``{'state_dict': <SandwichSupernet keys>, 'meta': {...}}`` and loads with
``torch.load(weights_only=True)``, e.g. as ``load_from`` of a supernet
config whose backbone has ``stem_quantize_input=False`` (the official stem
quantizes only its weights).

Example::

    python tools/model_converters/nasbnn_official_to_mm.py \
        checkpoint.pth.tar nasbnn_supernet_official.pth
"""
import argparse
import os.path as osp
import sys

import torch

from nasbnn_mm.models.utils import convert_official_state_dict


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='converted checkpoint')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not osp.isfile(args.src):
        print(
            f'error: checkpoint {args.src!r} does not exist', file=sys.stderr)
        return 2
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    state_dict = checkpoint.get('state_dict', checkpoint)
    try:
        converted = convert_official_state_dict(state_dict)
    except KeyError as e:
        print(f'error: {e.args[0]}', file=sys.stderr)
        return 2
    meta = dict(source=osp.basename(args.src), converter='nasbnn_official')
    if isinstance(checkpoint.get('epoch'), int):
        meta['epoch'] = checkpoint['epoch']
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'converted {len(state_dict)} -> {len(converted)} tensors: '
          f'{args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
