# Faster R-CNN sized for the 128x128 digits canvases: a 64-channel FPN with
# four levels (strides 4-32), anchors of 20-160 px, a 256-d box head and 128
# sampled RoIs. The backbone (and neck.in_channels) come from the config
# that inherits this one.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py']

model = dict(
    backbone=dict(init_cfg=None),
    neck=dict(out_channels=64, num_outs=4),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[5], strides=[4, 8, 16, 32])),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=64, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=10)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=300), rcnn=dict(max_per_img=50)))
