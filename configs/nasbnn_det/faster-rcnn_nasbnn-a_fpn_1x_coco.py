# Faster R-CNN with the NAS-BNN-A binary backbone (20.8M OPs on ImageNet at
# 224x224, Table 6) on COCO 2017: 8-bit LSQ stem, binary backbone initialised
# from the ImageNet supernet, full-precision FPN and heads (our choice; the
# paper does not say). Shared settings:
#   ./faster-rcnn_nasbnn-base_fpn_1x_coco.py
# Binary neck and heads:
#   ./faster-rcnn_nasbnn-a_binary-fpn-head_1x_coco.py
_base_ = ['./faster-rcnn_nasbnn-base_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='A'),
    # NASBNN('A', out_indices=(1, 2, 3, 4)).out_channels
    neck=dict(in_channels=[96, 192, 384, 768]))
