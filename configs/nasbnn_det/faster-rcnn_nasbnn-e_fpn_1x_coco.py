# Faster R-CNN with the NAS-BNN-E binary backbone (124.3M OPs on ImageNet at
# 224x224, Table 6) on COCO 2017: 8-bit LSQ stem, binary backbone initialised
# from the ImageNet supernet, full-precision FPN and heads (our choice; the
# paper does not say). Shared settings:
#   ./faster-rcnn_nasbnn-base_fpn_1x_coco.py
# Binary neck and heads:
#   ./faster-rcnn_nasbnn-e_binary-fpn-head_1x_coco.py
# NOTE: the extracted Table 6 gives E the same layers as D (so 124.3M
# OPs, not the 160M of the paper's text): kept as given, see
# docs/search_space.md.
_base_ = ['./faster-rcnn_nasbnn-base_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='E'),
    # NASBNN('E', out_indices=(1, 2, 3, 4)).out_channels
    neck=dict(in_channels=[192, 384, 768, 1536]))
