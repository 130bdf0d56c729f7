"""MMDetection's conv/FC box heads with binary shared layers."""
from typing import Tuple

import torch.nn as nn
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead

from nasbnn_mm.registry import MODELS
from nasbnn_mm.utils import OptConfigType
from .binary_blocks import BinaryConvBlock, BinaryLinearBlock

__all__ = ['BinaryConvFCBBoxHead', 'BinaryShared2FCBBoxHead']


@MODELS.register_module()
class BinaryConvFCBBoxHead(ConvFCBBoxHead):
    """:class:`ConvFCBBoxHead` with binary convs and FCs; FP predictors.

    Only the layer building changes: every conv of the head's branches is a
    :class:`BinaryConvBlock` (3×3, the Bi-Real shortcut where the widths
    allow it) and every FC a :class:`BinaryLinearBlock` (shortcut when
    ``fc_out_channels`` is at least the input width: the second FC of a
    Shared2FC head has an identity one, the first, from the flattened RoI
    features, none). The branches' shapes are ConvFCBBoxHead's own. The
    blocks end in RPReLU, so the head's ReLU after each FC is an identity.
    ``fc_cls`` and ``fc_reg`` stay full-precision ``nn.Linear``.

    Args:
        *args: Positional arguments of :class:`ConvFCBBoxHead`.
        block_cfg (dict, optional): Extra arguments of every binary block,
            e.g. ``dict(shortcut=False)``. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to None: MMDetection's ``Normal`` init of ``fc_cls``
            and ``fc_reg``; the binary layers keep PyTorch's init, as the
            weight normalization (eq. 6) removes their scale.
        **kwargs: Keyword arguments of :class:`ConvFCBBoxHead`.
    """

    def __init__(self,
                 *args,
                 block_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None,
                 **kwargs) -> None:
        # read by _add_conv_fc_branch, which ConvFCBBoxHead.__init__ calls
        self.block_cfg = dict(block_cfg or {})
        super().__init__(*args, init_cfg=init_cfg, **kwargs)
        if init_cfg is None:
            # NOTE: ConvFCBBoxHead's default adds a Xavier init of whole FC
            # branches, which would also hit the 1-D weights of BN/RPReLU.
            self.init_cfg = [
                cfg for cfg in self.init_cfg if cfg['type'] != 'Xavier'
            ]
        self.relu = nn.Identity()

    def _add_conv_fc_branch(self,
                            num_branch_convs: int,
                            num_branch_fcs: int,
                            in_channels: int,
                            is_shared: bool = False) -> Tuple:
        """ConvFCBBoxHead's branch with its convs and FCs made binary."""
        convs, fcs, last_layer_dim = super()._add_conv_fc_branch(
            num_branch_convs, num_branch_fcs, in_channels, is_shared)
        convs = nn.ModuleList(
            BinaryConvBlock(
                m.conv.in_channels,
                m.conv.out_channels,
                m.conv.kernel_size,
                stride=m.conv.stride,
                padding=m.conv.padding,
                **self.block_cfg) for m in convs)
        fcs = nn.ModuleList(
            BinaryLinearBlock(m.in_features, m.out_features, **self.block_cfg)
            for m in fcs)
        return convs, fcs, last_layer_dim


@MODELS.register_module()
class BinaryShared2FCBBoxHead(BinaryConvFCBBoxHead):
    """Binary form of MMDetection's ``Shared2FCBBoxHead``.

    Two shared binary FCs of ``fc_out_channels`` features, then the
    full-precision ``fc_cls`` and ``fc_reg``: the box head of mmdet's Faster
    R-CNN configs with only its ``type`` changed.

    Args:
        fc_out_channels (int): Width of the shared FCs. Defaults to 1024.
        **kwargs: Keyword arguments of :class:`BinaryConvFCBBoxHead`.

    Example:
        >>> import torch
        >>> from mmengine.registry import DefaultScope
        >>> with DefaultScope.overwrite_default_scope('mmdet'):
        ...     head = BinaryShared2FCBBoxHead(
        ...         fc_out_channels=32, in_channels=8, roi_feat_size=7,
        ...         num_classes=3)
        >>> cls, reg = head.eval()(torch.randn(5, 8, 7, 7))
        >>> cls.shape, reg.shape
        (torch.Size([5, 4]), torch.Size([5, 12]))
    """

    def __init__(self, fc_out_channels: int = 1024, **kwargs) -> None:
        super().__init__(
            num_shared_convs=0,
            num_shared_fcs=2,
            num_cls_convs=0,
            num_cls_fcs=0,
            num_reg_convs=0,
            num_reg_fcs=0,
            fc_out_channels=fc_out_channels,
            **kwargs)
