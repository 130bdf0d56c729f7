# Faster R-CNN with the NAS-BNN-D binary backbone on COCO 2017 and the
# binary precision map for the neck and heads (see
# ./faster-rcnn_nasbnn-base_binary-fpn-head_1x_coco.py).
_base_ = ['./faster-rcnn_nasbnn-base_binary-fpn-head_1x_coco.py']
model = dict(
    backbone=dict(arch='D'),
    # NASBNN('D', out_indices=(1, 2, 3, 4)).out_channels
    neck=dict(in_channels=[192, 384, 768, 1536]))
