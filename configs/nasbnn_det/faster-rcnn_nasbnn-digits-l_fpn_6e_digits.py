# NAS-BNN Faster R-CNN on the digits canvases (2 CPU cores): the largest
# subnet of the digits space as a binary backbone (8-bit LSQ stem, binary
# separable blocks), initialised from the digits supernet as the paper
# initialises its detectors from the ImageNet supernet (sec. 4.1.2). Train
# the supernet first:
#   python tools/train.py configs/nasbnn/nasbnn_supernet_digits.py
# Random initialisation for comparison:
#   --cfg-options model.backbone.init_cfg=None
# Full-precision FPN and heads; the binary map is in
# ./faster-rcnn_nasbnn-digits-l_binary-fpn-head_6e_digits.py.
_base_ = [
    '../_base_/models/faster-rcnn_fpn_digits.py',
    '../_base_/datasets/digits_det.py', '../_base_/default_runtime_det.py',
    '../_base_/schedules/det_6e_digits.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='nasbnn_mm.NASBNN',
        arch='configs/nasbnn_det/archs/nasbnn-digits-l.json',
        search_space='nasbnn_digits',
        out_indices=(1, 2),  # strides 4 and 8 on 128x128 canvases
        init_cfg=dict(
            type='SupernetInit',
            checkpoint='work_dirs/nasbnn_supernet_digits/epoch_40.pth')),
    # NASBNN(...).out_channels of that arch; PrecisionMapHook checks it
    neck=dict(in_channels=[64, 128], start_level=0))
custom_hooks = [
    dict(type='nasbnn_mm.PrecisionMapHook'),
    dict(type='nasbnn_mm.CheckpointKeysHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
]
