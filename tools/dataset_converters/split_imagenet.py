"""Hold out NAS-BNN's search images from the ImageNet training set.

The official NAS-BNN code (``split_imagenet.py``) moves 50 random training
images per class into a search-validation set and trains the supernet on
the rest, so that search candidates are ranked on images the supernet has
never seen. This tool makes the same split as two MMPretrain annotation
files instead of a copied tree (the images stay where they are):

- ``<out-dir>/train_search.txt``: the training images minus the held-out
  ones (the supernet's ``train_dataloader``);
- ``<out-dir>/search_val.txt``: ``--per-class`` images per class (the
  search's ``eval_dataloader``).

Lines are ``<wnid>/<file> <label>`` relative to ``<root>/train``, labels
are the classes' indices in sorted folder order (MMPretrain's ImageNet
order). The split is deterministic: files are listed in sorted order and
drawn with ``random.Random(seed)`` (the official script draws from
``os.listdir`` order, which depends on the file system, so its exact split
cannot be reproduced).

Example::

    python tools/dataset_converters/split_imagenet.py data/imagenet
"""
import argparse
import os
import os.path as osp
import random
import sys
from typing import Dict, List, Sequence, Tuple

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def list_classes(train_dir: str) -> Dict[str, List[str]]:
    """Sorted image file names of each class folder of ``train_dir``."""
    if not osp.isdir(train_dir):
        raise ValueError(f'{train_dir}: no such folder (expected '
                         '<root>/train/<class>/<image>)')
    classes = {}
    for name in sorted(os.listdir(train_dir)):
        folder = osp.join(train_dir, name)
        if osp.isdir(folder):
            classes[name] = sorted(
                f for f in os.listdir(folder)
                if f.lower().endswith(IMAGE_EXTENSIONS))
    if not classes:
        raise ValueError(f'{train_dir}: no class folders')
    return classes


def split_search_val(
        classes: Dict[str, Sequence[str]], per_class: int,
        seed: int) -> Tuple[List[Tuple[str, int]], List[Tuple[str, int]]]:
    """Draw ``per_class`` search images per class.

    Args:
        classes (dict[str, list[str]]): Class name -> image file names.
        per_class (int): Images held out per class.
        seed (int): Seed of the draw.

    Returns:
        tuple[list, list]: ``(train, search_val)`` as ``(path, label)``
        pairs, ``path`` = ``<class>/<file>``, in class then file order.

    Raises:
        ValueError: If a class has no more than ``per_class`` images.
    """
    if per_class < 1:
        raise ValueError(f'--per-class: {per_class}, expected >= 1')
    rng = random.Random(seed)
    train, search = [], []
    for label, (name, files) in enumerate(sorted(classes.items())):
        if len(files) <= per_class:
            raise ValueError(
                f'class {name}: {len(files)} images, cannot hold out '
                f'{per_class} and keep any for training')
        held = set(rng.sample(range(len(files)), per_class))
        for i, file in enumerate(files):
            (search if i in held else train).append((f'{name}/{file}', label))
    return train, search


def write_list(path: str, items: Sequence[Tuple[str, int]]) -> None:
    """Write ``<path> <label>`` lines through a temporary file."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.writelines(f'{item} {label}\n' for item, label in items)
    os.replace(tmp, path)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the supernet-training and search-validation '
        'annotation files of an ImageNet tree (NAS-BNN split).')
    parser.add_argument('root', help='ImageNet root with train/<wnid>/')
    parser.add_argument(
        '--out-dir', help='where the lists go (default <root>/meta)')
    parser.add_argument('--per-class', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out_dir = args.out_dir or osp.join(args.root, 'meta')
    try:
        classes = list_classes(osp.join(args.root, 'train'))
        train, search = split_search_val(classes, args.per_class, args.seed)
        if not osp.isdir(out_dir):
            raise ValueError(f'--out-dir {out_dir}: no such folder')
    except ValueError as e:
        sys.exit(f'split_imagenet.py: error: {e}')
    write_list(osp.join(out_dir, 'train_search.txt'), train)
    write_list(osp.join(out_dir, 'search_val.txt'), search)
    print(f'{len(classes)} classes: {len(train)} training images in '
          f'{out_dir}/train_search.txt, {len(search)} search images in '
          f'{out_dir}/search_val.txt')


if __name__ == '__main__':
    main()
