"""MMDetection's RPN head with a binary 3×3 conv."""
from typing import Tuple

import torch.nn as nn
from mmdet.models.dense_heads import RPNHead
from torch import Tensor

from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptConfigType
from .binary_blocks import BinaryConvBlock

__all__ = ['BinaryRPNHead']


@MODELS.register_module()
class BinaryRPNHead(RPNHead):
    """RPN head whose shared 3×3 conv(s) are :class:`BinaryConvBlock` s.

    Only the layers change: ``rpn_conv`` is ``num_convs`` binary blocks
    (RSign -> binary conv -> BN -> + identity shortcut -> RPReLU, the
    shortcut where the widths allow it), and ``forward_single`` skips the
    ReLU that :class:`RPNHead` applies after ``rpn_conv``, as the block ends
    in its own RPReLU. The predictors ``rpn_cls`` and ``rpn_reg`` (1×1
    convs) stay full precision. Anchors, losses and proposals are
    :class:`RPNHead`'s.

    Args:
        *args: Positional arguments of :class:`RPNHead`.
        block_cfg (dict, optional): Extra arguments of every
            :class:`BinaryConvBlock`, e.g. ``dict(shortcut=False)``.
            Defaults to None.
        **kwargs: Keyword arguments of :class:`RPNHead` (``in_channels``,
            ``feat_channels``, ``num_convs``, ``anchor_generator``...).

    Example:
        >>> import torch
        >>> from mmengine.registry import DefaultScope
        >>> with DefaultScope.overwrite_default_scope('mmdet'):
        ...     head = BinaryRPNHead(in_channels=8, feat_channels=8)
        >>> cls, reg = head.forward_single(torch.randn(1, 8, 6, 6))
        >>> cls.shape, reg.shape
        (torch.Size([1, 9, 6, 6]), torch.Size([1, 36, 6, 6]))
    """

    def __init__(self,
                 *args,
                 block_cfg: OptConfigType = None,
                 **kwargs) -> None:
        # read by _init_layers, which RPNHead.__init__ calls
        self.block_cfg = dict(block_cfg or {})
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        """Build ``rpn_conv`` from binary blocks, the predictors in FP."""
        self.rpn_conv = nn.Sequential(*[
            BinaryConvBlock(
                self.in_channels if i == 0 else self.feat_channels,
                self.feat_channels,
                3,
                padding=1,
                **self.block_cfg) for i in range(self.num_convs)
        ])
        self.rpn_cls = nn.Conv2d(self.feat_channels,
                                 self.num_base_priors * self.cls_out_channels,
                                 1)
        self.rpn_reg = nn.Conv2d(
            self.feat_channels,
            self.num_base_priors * self.bbox_coder.encode_size, 1)

    def forward_single(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Scores and box deltas of one level.

        Args:
            x (Tensor): Features (N, C, H, W) of one FPN level.

        Returns:
            tuple[Tensor, Tensor]: Scores (N, A * cls_out_channels, H, W)
            and deltas (N, A * 4, H, W), A anchors per position.
        """
        x = self.rpn_conv(x)
        return self.rpn_cls(x), self.rpn_reg(x)
