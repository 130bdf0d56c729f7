"""Average RoIAlign reading channels_last feature maps, on CPU.

The packed detector keeps its feature maps in the binary kernels'
channels_last memory; MMCV's and torchvision's CPU RoIAlign read NCHW
memory one channel at a time (4 scattered reads per sample and channel).
:func:`roi_align_nhwc` computes the same op with each bilinear sample read
as four contiguous C-vectors, in the reference ops' float operations and
order, so its output equals theirs (the tests compare it bitwise with
``torchvision.ops.roi_align`` and MMCV's ``RoIAlign``).
"""
from typing import Sequence

from torch import Tensor

from .binary_conv import load_ext

__all__ = ['roi_align_nhwc']


def roi_align_nhwc(x: Tensor,
                   rois: Tensor,
                   output_size: Sequence[int],
                   spatial_scale: float,
                   sampling_ratio: int = 0,
                   aligned: bool = True) -> Tensor:
    """Average RoIAlign of Mask R-CNN (MMCV's ``RoIAlign`` with
    ``pool_mode='avg'``; torchvision's ``roi_align``).

    Args:
        x (Tensor): (N, C, H, W) float32 on CPU; read in channels_last
            memory (a contiguous map is converted first).
        rois (Tensor): (K, 5) float32, rows (batch index, x1, y1, x2, y2) in
            input pixels.
        output_size (Sequence[int]): (PH, PW) bins per RoI.
        spatial_scale (float): Map pixels per input pixel (1 / stride).
        sampling_ratio (int): Samples per bin side; 0: ceil(RoI side / bins)
            per RoI. Defaults to 0.
        aligned (bool): Shift the boxes by -0.5 pixel (pixel centres).
            Defaults to True.

    Returns:
        Tensor: (K, C, PH, PW) float32, contiguous.
    """
    pooled_h, pooled_w = output_size
    return load_ext().roi_align_nhwc(x, rois, pooled_h, pooled_w,
                                     spatial_scale, sampling_ratio, aligned)
