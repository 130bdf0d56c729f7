# Faster R-CNN with the NAS-BNN-A binary backbone on COCO 2017 and the
# binary precision map for the neck and heads (see
# ./faster-rcnn_nasbnn-base_binary-fpn-head_1x_coco.py). The FPN and RPN
# are narrowed from 256 to 128 channels: A's backbone is the smallest
# (0.43G OPs at 800x1344) and a 256-channel binary neck and heads would cost
# 5.1x as much (128 channels: 1.7x; docs/detection.md).
_base_ = ['./faster-rcnn_nasbnn-base_binary-fpn-head_1x_coco.py']
width = 128
model = dict(
    backbone=dict(arch='A'),
    # NASBNN('A', out_indices=(1, 2, 3, 4)).out_channels
    neck=dict(in_channels=[96, 192, 384, 768], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width)))
