"""A packed NAS-BNN forward on the fused ops, to time before deploy has it.

:class:`FusedForward` runs the layers of a :class:`PackedNASBNN` the way
the deploy model is to run them once it adopts :mod:`nasbnn_mm.ops.fused`
(issue 17, next phase): every binary convolution also writes the packed
signs of the next one's input, the stride-2 shortcut is pooled in the
epilogue, the stem's RPReLU writes channels_last float and packed signs in
one pass, and the stem's quantized weight is computed once. Its logits are
bitwise equal to :meth:`PackedNASBNN.logits` (checked by
:meth:`FusedForward.check`).
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from nasbnn_mm.deploy import PackedNASBNN
from nasbnn_mm.ops import binary_conv2d, binary_conv2d_pack, rprelu_pack

__all__ = ['FusedForward']


def _conv_args(conv) -> Tuple:
    """Positional arguments of a packed conv for the fused ops, before the
    residual."""
    return (conv.blocked_weight(), conv.in_channels, conv.out_channels,
            conv.stride, conv.padding, conv.groups, conv.scale, conv.bias)


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
        # Per block: conv1 args, its RPReLU, pool flag, sign2 shift, conv2
        # args, its RPReLU, and the next block's (groups, shift) or None.
        self.blocks: List[Tuple] = []
        for i, block in enumerate(blocks):
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            self.blocks.append(
                (_conv_args(block.conv1), block.conv1._act(),
                 block.stride == 2, block.sign2.bias, _conv_args(block.conv2),
                 block.conv2._act(), None if nxt is None else
                 (nxt.conv1.groups, nxt.sign1.bias)))

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
        for conv1, act1, pool, sign2, conv2, act2, nxt in self.blocks:
            out, out_packed = binary_conv2d_pack(
                packed,
                *conv1,
                feat,
                act1,
                pool_residual=pool,
                pack_groups=1,
                pack_bias=sign2)
            if nxt is None:
                feat = binary_conv2d(out_packed, *conv2, out, act2)
            else:
                feat, packed = binary_conv2d_pack(
                    out_packed,
                    *conv2,
                    out,
                    act2,
                    pack_groups=nxt[0],
                    pack_bias=nxt[1])
        return self.model.fc(F.adaptive_avg_pool2d(feat, 1).flatten(1))

    def check(self, x: Tensor) -> None:
        """Raise unless the logits equal the model's, bit for bit."""
        if not torch.equal(self(x), self.model.logits(x)):
            raise AssertionError('FusedForward: logits differ from '
                                 'PackedNASBNN.logits')
