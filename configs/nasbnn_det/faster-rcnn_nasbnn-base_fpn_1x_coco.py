# Shared part of the paper's NAS-BNN detectors (sec. 4.3): mmdet's Faster
# R-CNN R50-FPN 1x COCO recipe with the backbone replaced by a static NASBNN
# subnet whose stages 1-4 (strides 4-32) feed the FPN. The variants set the
# arch and the matching neck.in_channels.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='nasbnn_mm.NASBNN',
        arch='A',
        search_space='nasbnn_in1k',
        out_indices=(1, 2, 3, 4),
        # the official supernet's conventions (see configs/nasbnn/README.md)
        stem_quantize_input=False,
        weight_norm='official',
        supernet_checkpoint='checkpoints/nasbnn_supernet_in1k.pth'),
    neck=dict(in_channels=[96, 192, 384, 768]))
custom_hooks = [
    dict(type='nasbnn_mm.PrecisionMapHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
]
