# Shared part of the NAS-BNN Faster R-CNNs on COCO 2017 with a
# full-precision neck and heads (the `_fpn_` configs; the binary map is in
# the `_binary-fpn-head_` configs, see docs/detection.md). The paper (sec.
# 4.1.2) gives: Faster R-CNN, the backbone initialised with the supernet's
# shared weights (sliced to the searched arch), the first conv in 8 bits
# with LSQ. It does not name the neck, the heads' precision or the schedule:
# mmdet's Faster R-CNN R50-FPN 1x recipe, with its full-precision 256-channel
# FPN and heads, is our choice. The backbone is a static NASBNN subnet whose
# stages 1-4 (strides 4-32) feed the FPN; the variants set the arch and the
# matching neck.in_channels. Convert the released supernet first:
#   python tools/model_converters/nasbnn_official_to_mm.py \
#       SRC checkpoints/nasbnn_supernet_in1k.pth
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['nasbnn_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='nasbnn_mm.NASBNN',
        arch='A',
        search_space='nasbnn_in1k',
        out_indices=(1, 2, 3, 4),
        # weight_norm, stem_quantize_input: from the checkpoint's conventions
        # (meta.nasbnn_conventions, written by the converter)
        init_cfg=dict(
            type='SupernetInit',
            checkpoint='checkpoints/nasbnn_supernet_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
custom_hooks = [
    dict(type='nasbnn_mm.PrecisionMapHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
]
