"""A packed NAS-BNN forward on the fused ops, to time before deploy has it.

:class:`FusedForward` runs the layers of a :class:`PackedNASBNN` the way
the deploy model is to run them once it adopts :mod:`nasbnn_mm.ops.fused`
(issue 17, next phase): one :func:`binary_block` call per block (the
stride-2 shortcut pooled in the epilogue, the intermediate map in row
buffers, the packed signs of the next block's input written with the
output), the stem's RPReLU writing channels_last float and packed signs in
one pass, and the stem's quantized weight computed once. Its logits are
bitwise equal to :meth:`PackedNASBNN.logits` (checked by
:meth:`FusedForward.check`).
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from nasbnn_mm.deploy import PackedNASBNN
from nasbnn_mm.ops import BinaryConvParams, binary_block, rprelu_pack

__all__ = ['FusedForward']


def _params(conv) -> BinaryConvParams:
    """The fused ops' view of a packed conv module."""
    return BinaryConvParams(conv.blocked_weight(), conv.in_channels,
                            conv.out_channels, conv.stride, conv.padding,
                            conv.groups, conv.scale, conv.bias, conv._act())


class FusedForward:
    """Logits of a packed model through the fused ops.

    Args:
        model (PackedNASBNN): With a classifier (``num_classes``).
    """

    def __init__(self, model: PackedNASBNN) -> None:
        if model.fc is None:
            raise ValueError('FusedForward: the model has no classifier')
        self.model = model
        stem = model.stem
        with torch.no_grad():
            self.stem_weight = stem.conv.weight_quantizer(stem.conv.weight)
        blocks = [block for stage in model.stages for block in stage]
        self.first = (blocks[0].conv1.groups, blocks[0].sign1.bias)
        # Per block: the arguments of binary_block after its inputs.
        self.blocks: List[Tuple] = []
        for i, block in enumerate(blocks):
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            self.blocks.append(
                (_params(block.conv1), _params(block.conv2), block.sign2.bias,
                 block.stride == 2, 0 if nxt is None else nxt.conv1.groups,
                 None if nxt is None else nxt.sign1.bias))

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        """(N, C_img, H, W) images -> (N, num_classes) logits."""
        stem = self.model.stem
        if stem.conv.input_quantizer is not None:
            x = stem.conv.input_quantizer(x)
        y = stem.bn(stem.conv._conv_forward(x, self.stem_weight, None))
        act = stem.act
        feat, packed = rprelu_pack(y, (act.bias_in, act.weight, act.bias_out),
                                   *self.first)
        for args in self.blocks:
            feat, packed = binary_block(packed, feat, *args)
        return self.model.fc(F.adaptive_avg_pool2d(feat, 1).flatten(1))

    def check(self, x: Tensor) -> None:
        """Raise unless the logits equal the model's, bit for bit."""
        if not torch.equal(self(x), self.model.logits(x)):
            raise AssertionError('FusedForward: logits differ from '
                                 'PackedNASBNN.logits')
