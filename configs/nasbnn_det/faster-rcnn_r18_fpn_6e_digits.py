# Full-precision reference: ResNet-18 Faster R-CNN on the digits canvases,
# trained from scratch with the same schedule as the NAS-BNN detectors.
_base_ = [
    '../_base_/models/faster-rcnn_fpn_digits.py',
    '../_base_/datasets/digits_det.py', '../_base_/default_runtime_det.py',
    '../_base_/schedules/det_6e_digits.py'
]
model = dict(
    backbone=dict(
        depth=18,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))
