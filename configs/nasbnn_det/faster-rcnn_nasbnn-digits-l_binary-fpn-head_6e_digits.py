# The digits NAS-BNN Faster R-CNN
# (./faster-rcnn_nasbnn-digits-l_fpn_6e_digits.py) with the binary
# precision map for the neck and heads: the FPN's lateral
# and output convs, the RPN's 3x3 conv and the box head's two shared FCs
# are binary blocks (RSign -> binary conv or linear with weight
# normalization and per-channel alpha -> BN -> RPReLU, Bi-Real shortcuts
# where the shapes allow); the 8-bit LSQ stem and the full-precision
# predictors stay. Widths as the full-precision digits detector (64-channel
# FPN, 256-d FCs). Train the supernet first:
#   python tools/train.py configs/nasbnn/nasbnn_supernet_digits.py
_base_ = ['./faster-rcnn_nasbnn-digits-l_fpn_6e_digits.py']
custom_imports = dict(
    imports=[
        'nasbnn_mm', 'nasbnn_mm.datasets.checked_coco',
        'nasbnn_mm.engine.hooks.checkpoint_keys_hook',
        'nasbnn_mm.models.detection'
    ],
    allow_failed_imports=False)

model = dict(
    neck=dict(conv_cfg=dict(type='nasbnn_mm.BinaryConvBlock')),
    rpn_head=dict(type='nasbnn_mm.BinaryRPNHead'),
    roi_head=dict(bbox_head=dict(type='nasbnn_mm.BinaryShared2FCBBoxHead')))
