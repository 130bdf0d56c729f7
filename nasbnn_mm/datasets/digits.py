"""Embedded real data: scikit-learn's 1,797 handwritten digit scans.

Two datasets are made from the 8×8 scans (values 0..16, ink high):

* a classification set in MMPretrain ``CustomDataset`` layout
  (``<root>/cls/<split>/<digit>/<index>.png``, RGB, upscaled), with splits
  ``train``, ``val`` and ``search_val`` (held out of the training images, as
  the NAS-BNN paper holds out 50 ImageNet images per class for searching);
* a COCO-format detection set (``<root>/det/images/<split>/*.png`` and
  ``<root>/det/annotations/instances_<split>.json``): canvases with several
  digits at random positions and scales, boxes tight around the ink.

Detection canvases of ``train`` use only training scans and ``val`` canvases
only validation scans, so the two never share a handwritten digit. Everything
is drawn from one seeded generator: the same seed gives the same files.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from nasbnn_mm.utils.errors import UserError

__all__ = [
    'CLASSES', 'CLS_SPLITS', 'DET_SPLITS', 'load_digit_scans', 'split_indices',
    'write_classification_set', 'write_detection_set', 'prepare_digits',
    'check_digits_root'
]

CLASSES = tuple(str(d) for d in range(10))
CLS_SPLITS = ('train', 'val', 'search_val')
DET_SPLITS = ('train', 'val')


def load_digit_scans() -> Tuple[np.ndarray, np.ndarray]:
    """Return the scans as uint8 images and their labels.

    Returns:
        tuple: images ``(1797, 8, 8)`` uint8 in [0, 255] (ink bright) and
        labels ``(1797,)`` int64 in [0, 9].
    """
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def split_indices(labels: np.ndarray, val_ratio: float,
                  search_val_per_class: int,
                  rng: np.random.RandomState) -> Dict[str, np.ndarray]:
    """Split scan indices class by class into train / val / search_val.

    Args:
        labels (np.ndarray): Labels ``(N,)``.
        val_ratio (float): Fraction of each class kept for ``val``.
        search_val_per_class (int): Training images per class held out as
            ``search_val``.
        rng (np.random.RandomState): Seeded generator.

    Returns:
        dict: Sorted index arrays for each split of :data:`CLS_SPLITS`.
    """
    if not 0 < val_ratio < 1:
        raise UserError(f'val_ratio: {val_ratio} not in (0, 1)')
    if search_val_per_class < 1:
        raise UserError(f'search_val_per_class: {search_val_per_class} '
                        'must be >= 1 (the search configs read search_val)')
    splits: Dict[str, List[int]] = {name: [] for name in CLS_SPLITS}
    for digit in range(len(CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        num_val = int(round(len(idx) * val_ratio))
        if num_val + search_val_per_class >= len(idx):
            raise UserError(
                f'search_val_per_class: {search_val_per_class} leaves no '
                f'training image of class {digit} ({len(idx)} images)')
        splits['val'] += idx[:num_val].tolist()
        splits['search_val'] += idx[num_val:num_val +
                                    search_val_per_class].tolist()
        splits['train'] += idx[num_val + search_val_per_class:].tolist()
    return {name: np.sort(np.array(v)) for name, v in splits.items()}


def _to_rgb(scan: np.ndarray, size: int) -> Image.Image:
    """Upscale an 8×8 scan to ``size``×``size`` RGB with bilinear filter."""
    image = Image.fromarray(
        scan, mode='L').resize((size, size), Image.BILINEAR)
    return image.convert('RGB')


def write_classification_set(root: str, images: np.ndarray, labels: np.ndarray,
                             splits: Dict[str, np.ndarray],
                             image_size: int) -> Dict[str, int]:
    """Write ``<root>/cls/<split>/<digit>/<index>.png`` for every split.

    Returns:
        dict: Number of images written per split.
    """
    counts = {}
    for split, indices in splits.items():
        for digit in CLASSES:
            os.makedirs(osp.join(root, 'cls', split, digit), exist_ok=True)
        for i in indices:
            path = osp.join(root, 'cls', split, str(labels[i]), f'{i:04d}.png')
            _to_rgb(images[i], image_size).save(path)
        counts[split] = len(indices)
    return counts


def _render_canvas(
        scans: np.ndarray, labels: np.ndarray, canvas_size: int,
        digits_range: Tuple[int, int], scale_range: Tuple[int, int],
        rng: np.random.RandomState) -> Tuple[np.ndarray, List[dict]]:
    """Paste a few scans on a dark canvas without overlap.

    Returns:
        tuple: the canvas ``(H, W)`` uint8 and a list of
        ``dict(bbox=[x, y, w, h], label=int)`` tight around each digit's ink.
    """
    canvas = np.zeros((canvas_size, canvas_size), np.uint8)
    occupied = np.zeros_like(canvas, dtype=bool)
    objects = []
    num_digits = rng.randint(digits_range[0], digits_range[1] + 1)
    for _ in range(num_digits):
        choice = rng.randint(len(scans))
        size = rng.randint(scale_range[0], scale_range[1] + 1)
        patch = np.asarray(
            Image.fromarray(scans[choice]).resize((size, size),
                                                  Image.BILINEAR))
        for _attempt in range(20):
            x = rng.randint(0, canvas_size - size + 1)
            y = rng.randint(0, canvas_size - size + 1)
            if not occupied[y:y + size, x:x + size].any():
                break
        else:
            continue  # the canvas is too full for this digit: skip it
        occupied[y:y + size, x:x + size] = True
        canvas[y:y + size, x:x + size] = patch
        ink_rows = np.flatnonzero((patch > 32).any(axis=1))
        ink_cols = np.flatnonzero((patch > 32).any(axis=0))
        x0, x1 = x + ink_cols[0], x + ink_cols[-1] + 1
        y0, y1 = y + ink_rows[0], y + ink_rows[-1] + 1
        objects.append(
            dict(
                bbox=[int(x0), int(y0),
                      int(x1 - x0),
                      int(y1 - y0)],
                label=int(labels[choice])))
    return canvas, objects


def write_detection_set(root: str, split: str, scans: np.ndarray,
                        labels: np.ndarray, num_canvases: int,
                        canvas_size: int, digits_range: Tuple[int, int],
                        scale_range: Tuple[int, int],
                        rng: np.random.RandomState) -> Dict[str, int]:
    """Write canvases and ``instances_<split>.json`` in COCO format.

    Category ids are ``digit + 1`` named ``'0'``..``'9'``.

    Returns:
        dict: ``images`` and ``annotations`` counts.
    """
    image_dir = osp.join(root, 'det', 'images', split)
    ann_dir = osp.join(root, 'det', 'annotations')
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    coco = dict(
        info=dict(description='sklearn digits on canvases (nasbnn_mm)'),
        images=[],
        annotations=[],
        categories=[
            dict(id=d + 1, name=name, supercategory='digit')
            for d, name in enumerate(CLASSES)
        ])
    for image_id in range(1, num_canvases + 1):
        canvas, objects = _render_canvas(scans, labels, canvas_size,
                                         digits_range, scale_range, rng)
        file_name = f'{image_id:05d}.png'
        Image.fromarray(canvas).convert('RGB').save(
            osp.join(image_dir, file_name))
        coco['images'].append(
            dict(
                id=image_id,
                file_name=file_name,
                width=canvas_size,
                height=canvas_size))
        for obj in objects:
            x, y, w, h = obj['bbox']
            coco['annotations'].append(
                dict(
                    id=len(coco['annotations']) + 1,
                    image_id=image_id,
                    category_id=obj['label'] + 1,
                    bbox=[x, y, w, h],
                    area=w * h,
                    iscrowd=0))
    with open(osp.join(ann_dir, f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f)
    return dict(
        images=len(coco['images']), annotations=len(coco['annotations']))


def prepare_digits(
    root: str,
    seed: int = 0,
    image_size: int = 32,
    val_ratio: float = 0.2,
    search_val_per_class: int = 5,
    num_train_canvases: int = 800,
    num_val_canvases: int = 200,
    canvas_size: int = 128,
    digits_per_canvas: Tuple[int, int] = (1, 4),
    digit_size: Tuple[int, int] = (20, 44)
) -> dict:
    """Write both digits datasets under ``root`` and return their counts.

    Args:
        root (str): Output folder (created).
        seed (int): Seed of every random choice. Defaults to 0.
        image_size (int): Side of classification images in pixels.
            Defaults to 32.
        val_ratio (float): Fraction of each class kept for validation.
            Defaults to 0.2.
        search_val_per_class (int): Training images per class held out for
            the architecture search. Defaults to 5.
        num_train_canvases (int): Detection training canvases.
            Defaults to 800.
        num_val_canvases (int): Detection validation canvases.
            Defaults to 200.
        canvas_size (int): Side of a detection canvas in pixels.
            Defaults to 128.
        digits_per_canvas (tuple[int, int]): Inclusive range of digits per
            canvas. Defaults to (1, 4).
        digit_size (tuple[int, int]): Inclusive range of a pasted digit's
            side in pixels. Defaults to (20, 44).

    Returns:
        dict: Counts per dataset and split, also written to
        ``<root>/meta.json``.

    Raises:
        UserError: If a size, count or split option is out of range.
    """
    for name, value in (('image_size', image_size), ('num_train_canvases',
                                                     num_train_canvases),
                        ('num_val_canvases', num_val_canvases), ('canvas_size',
                                                                 canvas_size)):
        if value < 1:
            raise UserError(f'{name}: {value} must be >= 1')
    if not 1 <= digit_size[0] <= digit_size[1] <= canvas_size:
        raise UserError(f'digit_size: {digit_size} must be an increasing '
                        f'pair no larger than canvas_size {canvas_size}')
    rng = np.random.RandomState(seed)
    images, labels = load_digit_scans()
    splits = split_indices(labels, val_ratio, search_val_per_class, rng)
    meta = dict(seed=seed, classes=list(CLASSES))
    meta['cls'] = write_classification_set(root, images, labels, splits,
                                           image_size)
    det_sources = dict(train=splits['train'], val=splits['val'])
    det_counts = dict(train=num_train_canvases, val=num_val_canvases)
    meta['det'] = {}
    for split in DET_SPLITS:
        idx = det_sources[split]
        meta['det'][split] = write_detection_set(
            root, split, images[idx], labels[idx], det_counts[split],
            canvas_size, digits_per_canvas, digit_size, rng)
    with open(osp.join(root, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    return meta


def check_digits_root(root: str,
                      cls_splits: Sequence[str] = CLS_SPLITS,
                      det_splits: Sequence[str] = DET_SPLITS) -> None:
    """Raise a one-line ``FileNotFoundError`` naming the first missing path.

    Args:
        root (str): Folder written by :func:`prepare_digits`.
        cls_splits (Sequence[str]): Classification splits required.
        det_splits (Sequence[str]): Detection splits required.
    """
    hint = ('run `python tools/dataset_converters/prepare_digits.py '
            f'--out {root}`')
    if not osp.isdir(root):
        raise FileNotFoundError(f'digits data root {root!r} does not exist; '
                                f'{hint}')
    required = [osp.join(root, 'cls', split) for split in cls_splits]
    for split in det_splits:
        required += [
            osp.join(root, 'det', 'images', split),
            osp.join(root, 'det', 'annotations', f'instances_{split}.json')
        ]
    for path in required:
        if not osp.exists(path):
            raise FileNotFoundError(f'digits split missing: {path!r}; {hint}')
