"""A detector that predicts jittered ground truth (tests only).

Imported by ``tools/test.py`` through ``custom_imports`` in
``test_test_coco.py``'s subprocess, so COCO metrics are checked on
predictions whose mAP lies strictly between 0 and 1.
"""
import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmengine.structures import InstanceData


@MODELS.register_module()
class OracleDetector(BaseDetector):

    def __init__(self, data_preprocessor=None, init_cfg=None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        generator = torch.Generator().manual_seed(0)
        for sample in batch_data_samples:
            gt = sample.gt_instances
            n = len(gt)
            boxes = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else \
                gt.bboxes
            jitter = torch.randn(n, 4, generator=generator) * 3
            labels = gt.labels.clone()
            labels[::3] = (labels[::3] + 1) % 10  # every third one is wrong
            pred = InstanceData()
            pred.bboxes = (boxes + jitter).clamp(min=0)
            pred.scores = torch.rand(n, generator=generator)
            pred.labels = labels
            sample.pred_instances = pred
        return batch_data_samples

    def loss(self, batch_inputs, batch_data_samples):
        raise NotImplementedError

    def _forward(self, batch_inputs, batch_data_samples=None):
        return batch_inputs

    def extract_feat(self, batch_inputs):
        return batch_inputs
