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

# Schedule adapted: the step decay of det_6e_digits.py (lr 0.02, x0.1 after
# epoch 5) ends with weights still moving, and the BN running averages of a
# network this binary lag them (val mAP 0.53 with the step schedule; 0.75 if
# the same weights only update BN on 40 more batches). A cosine decay to 0
# over epochs 2-6 (per iteration, after the same 200-iteration warm-up)
# lets the statistics settle on the final weights. docs/detection.md.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=1,
        end=6,
        T_max=5,
        eta_min=0,
        convert_to_iter_based=True)
]
