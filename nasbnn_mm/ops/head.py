"""The classifier head of a packed NAS-BNN in one op.

Global average pooling of the last stage, then the fully connected layer
(MMPretrain's ``GlobalAveragePooling`` + ``LinearClsHead``), with every sum
in one fixed order: per channel, 0 plus the pixels in raster order, divided
by their count; per logit, 0 plus ``pooled[k] * weight[o, k]`` for ``k`` in
order, plus the bias (a product and a sum each, rounded). The order is the
package's choice: ``adaptive_avg_pool2d`` and ``nn.Linear`` sum in orders
of their own (cascades, BLAS blocking, varying with the thread count), so
the logits differ from theirs in the last bits, and a fixed order lets
:func:`classifier_head` (one pass, no ATen or BLAS call after the blocks)
and :func:`classifier_head_ref` give the very same bits on every path and
thread count.
"""
from torch import Tensor

from .binary_conv import load_ext

__all__ = ['head_weight_blocks', 'classifier_head', 'classifier_head_ref']

HEAD_LANES = 16


def head_weight_blocks(weight: Tensor) -> Tensor:
    """(O, C) fully connected weight -> (ceil(O / 16), C, 16) blocks for
    :func:`classifier_head`: output ``o``'s weights at ``[o // 16, :,
    o % 16]``, zeros past ``O``."""
    outputs, channels = weight.shape
    blocks = -(-outputs // HEAD_LANES)
    padded = weight.new_zeros(blocks * HEAD_LANES, channels)
    padded[:outputs] = weight
    blocked = padded.view(blocks, HEAD_LANES, channels)
    return blocked.transpose(1, 2).contiguous()


def classifier_head(feat: Tensor, weight_blocks: Tensor,
                    bias: Tensor) -> Tensor:
    """Logits of the (N, C, H, W) float32 last stage (read in channels_last
    memory): global average pooling, then the fully connected layer of
    :func:`head_weight_blocks` and ``bias`` (O, ).

    Bitwise equal to :func:`classifier_head_ref` on every kernel path.

    Returns:
        Tensor: (N, O) float32.
    """
    return load_ext().classifier_head(feat, weight_blocks, bias)


def classifier_head_ref(feat: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Pure-PyTorch :func:`classifier_head` on the (O, C) ``weight``: the
    sums taken one term at a time, in the kernels' order."""
    n, channels, height, width = feat.shape
    total = feat.new_zeros(n, channels)
    for y in range(height):
        for x in range(width):
            total = total + feat[:, :, y, x]
    pooled = total / (height * width)
    logits = feat.new_zeros(n, weight.shape[0])
    for k in range(channels):
        logits = logits + pooled[:, k, None] * weight[:, k]
    return logits + bias
