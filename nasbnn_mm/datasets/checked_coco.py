"""mmdet's ``CocoDataset`` that says what it drops and refuses empty files.

mmdet skips annotations whose ``category_id`` is not one of the config's
classes without a word, and an annotation file with no usable annotation
fails later inside numpy (``need at least one array to concatenate``) or
scores mAP -1. :class:`CheckedCocoDataset` warns with the count of skipped
annotations and their ids, and raises one line naming the file when no
annotation of the classes is left.

It imports mmdet: configs load it with
``custom_imports=dict(imports=['nasbnn_mm.datasets.checked_coco'])``
(``configs/_base_/default_runtime_det.py`` does).
"""
import warnings
from collections import Counter
from typing import List

from mmdet.datasets import CocoDataset

from nasbnn_mm.registry import DATASETS
from nasbnn_mm.utils.errors import UserError

__all__ = ['CheckedCocoDataset']

# How many foreign category ids a warning names.
_NAMED = 5


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """A COCO-format detection dataset that checks its annotation file.

    Takes the arguments of mmdet's ``CocoDataset`` unchanged.

    Raises:
        UserError: If the file has no image, or no annotation whose
            category is one of ``metainfo['classes']``.

    Warns:
        UserWarning: With the number of annotations whose category id is
            not one of the classes (skipped, as mmdet skips them).

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='nasbnn_mm.CheckedCocoDataset', data_root='data/coco/',
        ...     ann_file='annotations/instances_train2017.json',
        ...     data_prefix=dict(img='train2017/')))
    """

    def load_data_list(self) -> List[dict]:
        """Load the file as mmdet does, then check what was kept."""
        self._foreign: Counter = Counter()
        self._num_annotations = 0
        data_list = super().load_data_list()
        where = f'ann_file {self.ann_file}'
        if not data_list:
            raise UserError(f'{where}: no images')
        if self._foreign:
            ids = sorted(self._foreign)
            named = ', '.join(str(i) for i in ids[:_NAMED])
            more = f' (+{len(ids) - _NAMED} more)' if len(ids) > _NAMED \
                else ''
            warnings.warn(
                f'{where}: {sum(self._foreign.values())} of '
                f'{self._num_annotations} annotations have category ids '
                f'outside the {len(self.cat_ids)} classes ({named}{more}) '
                'and are skipped')
        if not any(info['instances'] for info in data_list):
            raise UserError(
                f'{where}: no annotation of the classes '
                f'{list(self.metainfo["classes"])} among '
                f'{self._num_annotations} annotations of {len(data_list)} '
                'images; check the file and metainfo.classes')
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Count the annotations mmdet skips for their category, then parse.
        """
        anns = raw_data_info['raw_ann_info']
        self._num_annotations += len(anns)
        self._foreign.update(a['category_id'] for a in anns
                             if a['category_id'] not in self.cat_ids)
        return super().parse_data_info(raw_data_info)
