"""CheckedCocoDataset: mmdet's CocoDataset that says what it drops."""
import json

import pytest

from nasbnn_mm.datasets.checked_coco import CheckedCocoDataset
from nasbnn_mm.utils import UserError

CLASSES = ('0', '1', '2')


def _coco(tmp_path, category_ids, num_images=2):
    """A COCO file: one 10x10 box per listed category id, on image 1."""
    data = dict(
        images=[
            dict(id=i, file_name=f'{i}.png', width=64, height=64)
            for i in range(1, num_images + 1)
        ],
        annotations=[
            dict(
                id=k + 1,
                image_id=1,
                category_id=c,
                bbox=[k, k, 10, 10],
                area=100,
                iscrowd=0) for k, c in enumerate(category_ids)
        ],
        categories=[
            dict(id=d + 1, name=name) for d, name in enumerate(CLASSES)
        ])
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(data))
    return str(path)


def _dataset(ann_file, test_mode=True):
    return CheckedCocoDataset(
        ann_file=ann_file,
        metainfo=dict(classes=CLASSES),
        data_prefix=dict(img=''),
        test_mode=test_mode,
        pipeline=[])


def test_annotations_of_the_classes_load_silently(tmp_path, recwarn):
    dataset = _dataset(_coco(tmp_path, [1, 2, 3, 3]))
    assert len(dataset) == 2
    labels = [i['bbox_label'] for i in dataset.get_data_info(0)['instances']]
    assert labels == [0, 1, 2, 2]
    assert not [w for w in recwarn if 'category' in str(w.message)]


def test_foreign_category_ids_warn_with_their_count(tmp_path):
    ann_file = _coco(tmp_path, [1, 7, 2, 7, 9])
    with pytest.warns(UserWarning) as record:
        dataset = _dataset(ann_file)
    message = str([w for w in record
                   if 'category' in str(w.message)][0].message)
    assert message == (f'ann_file {ann_file}: 3 of 5 annotations have '
                       'category ids outside the 3 classes (7, 9) and are '
                       'skipped')
    labels = [i['bbox_label'] for i in dataset.get_data_info(0)['instances']]
    assert labels == [0, 1]


@pytest.mark.parametrize('test_mode', [True, False])
def test_no_annotation_of_the_classes_is_one_line(tmp_path, test_mode):
    ann_file = _coco(tmp_path, [])
    with pytest.raises(UserError) as e:
        _dataset(ann_file, test_mode)
    assert str(e.value) == (
        f"ann_file {ann_file}: no annotation of the classes ['0', '1', '2'] "
        'among 0 annotations of 2 images; check the file and '
        'metainfo.classes')


def test_only_foreign_categories_is_one_line(tmp_path):
    ann_file = _coco(tmp_path, [8, 9])
    with pytest.warns(UserWarning), pytest.raises(
            UserError, match='no annotation of the classes .* among 2 '):
        _dataset(ann_file)


def test_no_images_is_one_line(tmp_path):
    ann_file = _coco(tmp_path, [], num_images=0)
    with pytest.raises(UserError, match=f'^ann_file {ann_file}: no images$'):
        _dataset(ann_file)
