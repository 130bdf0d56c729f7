# Shared part of the NAS-BNN Faster R-CNNs on COCO 2017 with the binary
# precision map for the neck and heads (the `_binary-fpn-head_` configs).
# The FPN's lateral and output convs, the RPN's 3x3 conv and the box head's
# two shared FCs run the backbone's binary scheme (RSign -> binary conv or
# linear with weight normalization and per-channel alpha -> BN -> RPReLU,
# Bi-Real shortcuts where the shapes allow; nasbnn_mm/models/detection/).
# The backbone's 8-bit LSQ stem stays, and so do the full-precision
# predictors (rpn_cls, rpn_reg, fc_cls, fc_reg), as in the binary detectors
# of the paper's Table 3. The paper does not say how its own neck and heads
# are built: this map is our choice.
# Widths: mmdet's 256-channel FPN/RPN is kept, the box head's FCs are
# narrowed from 1024 to 256 so that the neck and heads cost at most twice
# the backbone's OPs at 800x1344 (NAS-BNN-A narrows the FPN too); with
# 1024-wide FCs they cost 2.29x NAS-BNN-B's backbone. Numbers and the
# other widths: docs/detection.md.
_base_ = ['./faster-rcnn_nasbnn-base_fpn_1x_coco.py']
custom_imports = dict(
    imports=['nasbnn_mm', 'nasbnn_mm.models.detection'],
    allow_failed_imports=False)

model = dict(
    neck=dict(conv_cfg=dict(type='nasbnn_mm.BinaryConvBlock')),
    rpn_head=dict(type='nasbnn_mm.BinaryRPNHead'),
    roi_head=dict(
        bbox_head=dict(
            type='nasbnn_mm.BinaryShared2FCBBoxHead', fc_out_channels=256)))
