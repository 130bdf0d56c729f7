# Faster R-CNN with the NAS-BNN-D binary backbone (124.3M OPs on
# ImageNet at 224x224, Table 6) on COCO 2017, as the paper's section 4.3:
# 8-bit LSQ stem, binary backbone, full-precision FPN and heads, the
# backbone initialised from the ImageNet supernet weights (sliced to the
# arch). Convert the released supernet first:
#   python tools/model_converters/nasbnn_official_to_mm.py \
#       SRC checkpoints/nasbnn_supernet_in1k.pth
_base_ = ['./faster-rcnn_nasbnn-base_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='D'),
    # NASBNN('D', out_indices=(1, 2, 3, 4)).out_channels
    neck=dict(in_channels=[192, 384, 768, 1536]))
