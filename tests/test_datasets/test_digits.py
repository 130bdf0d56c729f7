import hashlib
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from nasbnn_mm.datasets.digits import (CLASSES, check_digits_root,
                                       prepare_digits)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tree_digest(root: str) -> str:
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = osp.join(folder, name)
            digest.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digits'))
    prepare_digits(root, num_train_canvases=24, num_val_canvases=12)
    return root


def test_classification_splits_cover_all_scans(digits_root):
    with open(osp.join(digits_root, 'meta.json')) as f:
        meta = json.load(f)
    assert sum(meta['cls'].values()) == 1797
    assert meta['cls']['search_val'] == 50  # 5 per class, held out of train
    for split, count in meta['cls'].items():
        files = [
            name for digit in CLASSES
            for name in os.listdir(osp.join(digits_root, 'cls', split, digit))
        ]
        assert len(files) == count
    # a scan lives in exactly one split
    names = [
        name for split in meta['cls'] for digit in CLASSES
        for name in os.listdir(osp.join(digits_root, 'cls', split, digit))
    ]
    assert len(names) == len(set(names)) == 1797


def test_same_seed_same_files(digits_root, tmp_path):
    again = str(tmp_path / 'again')
    prepare_digits(again, num_train_canvases=24, num_val_canvases=12)
    assert _tree_digest(again) == _tree_digest(digits_root)


def test_coco_annotations_are_valid(digits_root):
    for split, num_images in (('train', 24), ('val', 12)):
        path = osp.join(digits_root, 'det', 'annotations',
                        f'instances_{split}.json')
        with open(path) as f:
            coco = json.load(f)
        assert len(coco['images']) == num_images
        assert [c['name'] for c in coco['categories']] == list(CLASSES)
        sizes = {i['id']: (i['width'], i['height']) for i in coco['images']}
        assert len(coco['annotations']) >= num_images
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            width, height = sizes[ann['image_id']]
            assert 0 <= x and 0 <= y and w > 0 and h > 0
            assert x + w <= width and y + h <= height
            assert ann['area'] == w * h and ann['iscrowd'] == 0
            assert 1 <= ann['category_id'] <= 10


def test_mmpretrain_loads_classification_config(digits_root):
    pytest.importorskip('mmpretrain')
    from mmpretrain.registry import DATASETS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/digits_cls.py'))
    for key in ('train_dataloader', 'val_dataloader', 'search_val_dataloader'):
        dataset_cfg = cfg[key]['dataset']
        dataset_cfg['data_root'] = osp.join(digits_root, 'cls')
        dataset = DATASETS.build(dataset_cfg)
        assert dataset.CLASSES == CLASSES
        sample = dataset[0]
        assert tuple(sample['inputs'].shape) == (3, 32, 32)
        assert 0 <= sample['data_samples'].gt_label.item() < 10


def test_mmdet_loads_detection_config(digits_root):
    pytest.importorskip('mmdet')
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules

    import nasbnn_mm.datasets.checked_coco  # noqa: F401 (the config's type)
    register_all_modules()
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/digits_det.py'))
    for key, num_images in (('train_dataloader', 24), ('val_dataloader', 12)):
        dataset_cfg = cfg[key]['dataset']
        dataset_cfg['data_root'] = osp.join(digits_root, 'det') + '/'
        dataset = DATASETS.build(dataset_cfg)
        assert dataset.metainfo['classes'] == CLASSES
        assert len(dataset) == num_images
        sample = dataset[0]
        boxes = sample['data_samples'].gt_instances.bboxes.tensor
        labels = sample['data_samples'].gt_instances.labels
        assert len(boxes) == len(labels) > 0
        assert (boxes >= 0).all() and (boxes <= 128).all()
        assert labels.min() >= 0 and labels.max() < 10


def test_missing_root_names_the_path(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        check_digits_root(missing)


def test_missing_split_names_the_path(digits_root, tmp_path):
    root = str(tmp_path / 'partial')
    os.makedirs(osp.join(root, 'cls', 'train'))
    with pytest.raises(FileNotFoundError) as info:
        check_digits_root(root)
    message = str(info.value)
    assert osp.join(root, 'cls', 'val') in message
    assert '\n' not in message
    check_digits_root(digits_root)  # a complete root passes
